//! L3 basics: routes (longest-prefix match), the box's own addresses, and the per-core
//! neighbour table (ARP / IPv6 neighbour discovery).

pub mod neigh;
pub mod route;

pub use neigh::{NeighParams, NeighState, NeighTable};
pub use route::{Route, RouteOrigin, RouteTable};
