;; A core WebAssembly module, not a component: the host must reject it when
;; it is loaded as a plugin. Tests turn it into bytes with the `wat` crate.
(module
  (memory (export "memory") 1)
  (func (export "describe") (result i32)
    i32.const 0))
