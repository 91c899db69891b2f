//! Integration tests: a real server on port 0 with a temporary PoloDB, real HTTP and
//! WebSocket clients, and headless Chromium for what a person sees.

mod accessibility;
mod admin;
mod attachments;
mod bots;
mod browser;
mod browser_experience;
mod compression;
mod crash;
mod devices;
mod direct;
mod graceful;
mod helpers;
mod hosts;
mod identity;
mod instances;
mod limits;
mod live;
mod login;
mod membership;
mod mentions;
mod messages;
mod operations;
mod proxy;
mod restart;
mod rooms;
mod search;
mod session_expiry;
mod slowloris;
mod store_failure;
mod storm;
