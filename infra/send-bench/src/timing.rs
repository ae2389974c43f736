//! Per-operation request counts and latencies of the SDK clients, recorded by an interceptor
//! from just before a request is sent to just after its response arrives (each attempt).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::stats::Summary;

/// Shared by every client it is installed on; `take` empties it.
#[derive(Debug, Clone, Default)]
pub struct OpTimer {
    samples: Arc<Mutex<BTreeMap<String, Samples>>>,
}

/// One operation's attempts: latencies, and how many were answered with an HTTP error.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub latencies: Vec<Duration>,
    pub errors: usize,
}

/// One operation's summary for the report.
#[derive(Debug, Clone)]
pub struct OpSummary {
    pub op: String,
    pub latency: Summary,
    pub errors: usize,
}

#[derive(Debug, Clone)]
struct SentAt(Instant);

impl Storable for SentAt {
    type Storer = StoreReplace<Self>;
}

impl OpTimer {
    /// Every operation's attempts so far (keyed `Service.Operation`), and forgets them.
    pub fn take(&self) -> BTreeMap<String, Samples> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Summaries per operation, and forgets the samples.
    pub fn take_summaries(&self) -> Vec<OpSummary> {
        self.take()
            .into_iter()
            .filter(|(_, v)| !v.latencies.is_empty())
            .map(|(op, v)| OpSummary {
                op,
                latency: Summary::of(&v.latencies),
                errors: v.errors,
            })
            .collect()
    }
}

impl Intercept for OpTimer {
    fn name(&self) -> &'static str {
        "SendBenchOpTimer"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(SentAt(Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(SentAt(sent)) = cfg.load::<SentAt>().cloned() else {
            return Ok(());
        };
        let elapsed = sent.elapsed();
        let op = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        let failed = !context.response().status().is_success();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let entry = samples.entry(op).or_default();
        entry.latencies.push(elapsed);
        entry.errors += usize::from(failed);
        Ok(())
    }
}

/// A DynamoDB client like `sdk`'s, timed by `timer`.
pub fn dynamodb(sdk: &aws_config::SdkConfig, timer: &OpTimer) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(timer.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An SQS client like `sdk`'s, timed by `timer`.
pub fn sqs(sdk: &aws_config::SdkConfig, timer: &OpTimer) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .interceptor(timer.clone())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}
