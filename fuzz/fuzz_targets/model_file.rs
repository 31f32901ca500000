//! The model-file loader must answer any bytes with a model or an error, never a
//! panic (nor an allocation larger than the file justifies).
#![no_main]
use libfuzzer_sys::fuzz_target;
use seqnet_train::Model;

fuzz_target!(|data: &[u8]| {
    let _ = Model::from_bytes(data, "fuzz.safetensors");
});
