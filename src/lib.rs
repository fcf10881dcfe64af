//! umbrella
