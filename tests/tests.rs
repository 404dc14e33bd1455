//! The one integration-test binary: each topic file is a module, so all of
//! them build and link once.

mod util;

mod audit;
mod autumn;
mod backfill;
mod cli;
mod daemon;
mod docs;
mod golden;
mod loggen;
mod metrics;
mod numbers;
mod objectstore;
mod one_path;
mod package;
mod systemd;
mod threads;
mod upkeep;
mod verify;
