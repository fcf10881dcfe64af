//! vae-core
