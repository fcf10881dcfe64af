//! vae-vision
