//! Model tests: Hugging Face config and checkpoint handling, and (with the
//! model code) parity with transformers on the fixtures in models/fixtures/.
//! The files under kernels-tests/models/ mirror src/models/.

mod common;
mod models {
    mod checkpoint_io;
    mod cli;
    mod config;
    mod encoders;
    mod generate_compaction;
    mod heads;
    mod large_vocab;
    mod llama;
    mod llama_hf;
    mod lora;
    mod memory_plan;
    mod parity;
    mod qlora;
    mod real_tokenizers;
    mod registry;
    mod train_step;
}
