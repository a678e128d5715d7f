//! roost-firewall integration tests: the ruleset compiled from the example settings, checked by
//! the real nft and applied in network namespaces with real traffic. Tests named `needs_root`
//! create network namespaces (`roost-t-<pid>-<n>-<role>`) and delete them when done.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod compile_tests;
mod dhcp_tests;
mod netns;
mod nft_tests;
mod traffic_tests;
