mod checkpoint_io;
mod cli;
mod config;
mod heads;
mod large_vocab;
mod parity;
mod real_tokenizers;
mod train_step;
