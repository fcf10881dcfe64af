//! vae-data
