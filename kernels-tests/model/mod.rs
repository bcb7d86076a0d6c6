mod checkpoint_io;
mod config;
mod heads;
mod lora;
mod parity;
