//! The system under test: the services of the investment / orders / replication stack, the
//! ports (traits) they use to reach the outside, the topology, and the bug zoo.
//!
//! Service code never knows which backend runs it: `sim/` and the real adapters implement the
//! same ports.

pub mod api;
pub mod ports;
pub mod topology;
