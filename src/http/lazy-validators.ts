import AjvCompiler, { type ValidatorFactory } from '@fastify/ajv-compiler'

type Validate = ((data: unknown) => unknown) & { errors?: unknown }

/**
 * Fastify's own validator builder (ajv), with every route's validator compiled on its first use
 * instead of when the app starts: making the ajv instance and compiling the forms' schemas cost
 * about 45 ms of every instance's start-up, and most instances serve pages long before a form.
 * The validator behaves as the compiled one, its `errors` included; a schema ajv refused would
 * fail on its route's first request rather than at start-up (the schemas are the app's own, and
 * the tests post every form).
 */
export function lazyValidators (): ValidatorFactory {
  const build = AjvCompiler()
  return (externalSchemas, options) => {
    let compiler: ReturnType<ValidatorFactory> | undefined
    return (route) => {
      let compiled: Validate | undefined
      const validate: Validate = (data) => {
        compiled ??= (compiler ??= build(externalSchemas, options))(route) as Validate
        const result = compiled(data)
        validate.errors = compiled.errors
        return result
      }
      return validate as ReturnType<ReturnType<ValidatorFactory>>
    }
  }
}
