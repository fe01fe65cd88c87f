/** `.wasm` files imported as ES modules (wrangler's CompiledWasm rule): already compiled, as workerd requires. */
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
