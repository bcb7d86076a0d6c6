mod checkpoint_io;
mod config;
