//! Workspace-level test support. Integration tests live in tests/tests/.
//!
//! - [`lab`]: the network-namespace lab (bridge, farm nodes, client) used by the `farm-lab`
//!   tool and by the end-to-end tests.

pub mod lab;
