//! Parley's local stack: the AWS emulator, resources created from `template.yaml`, and a
//! gateway that serves the template's routes with the shipping handler code.

pub mod apigw;
pub mod audit;
pub mod bootstrap;
pub mod crash;
pub mod emulator;
pub mod env;
pub mod event_sources;
pub mod fault;
pub mod functions;
pub mod gateway;
pub mod invocation;
pub mod redrive;
pub mod replay;
pub mod stack;
pub mod stream_failure;
pub mod template;
