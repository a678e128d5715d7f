//! Integration tests of roost-update: a real TUF repository built by the publisher, read by our
//! client, by python-tuf, and through the tuf-client CLI; attacks against the client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod agent_tests;
mod attack_tests;
mod nix_tests;
mod publish_tests;
mod python_tuf_tests;
mod support;
mod tuf_client_tests;
