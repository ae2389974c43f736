//! Seeding and reading the store directly.

use crate::{InboundForm, Stack};

impl Stack {
    /// The stored message a send answered with.
    pub async fn outbound(&self, to: &str, message_id: &str) -> Option<parley::store::Message> {
        let address = parley::phone::Address::parse(to).expect("valid number");
        let pk = parley::store::keys::conversation_pk(address.channel, &address.e164);
        self.store
            .message(&pk, &parley::store::keys::message_sk(message_id))
            .await
            .expect("store reachable")
    }
}

/// An inbound message from `phone` recorded in `store` (a table of the test's own, or the
/// stack's), and its stream record: the sample event's, about this number and message.
pub async fn recorded_message(
    stack: &Stack,
    store: &parley::store::Store,
    phone: &str,
) -> (String, aws_lambda_events::event::dynamodb::Event) {
    use parley::store::InboundRecord;
    let message_id = ulid::Ulid::new().to_string();
    let body = "Hola, ya pagué la renta de este mes. ¿Pueden confirmar?";
    let raw = InboundForm::new(stack, phone, body).encode();
    let sms = parley::twilio::InboundSms::from_form(
        &parley::twilio::Form::parse(raw.as_bytes()).unwrap(),
    )
    .unwrap();
    store
        .record_inbound(&InboundRecord {
            sms: &sms,
            raw_payload: &raw,
            message_id: message_id.clone(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: parley::language::detect(body),
            keyword: None,
            trace: None,
        })
        .await
        .unwrap();
    let record = include_str!("../../events/inbound-processor.json")
        .replace("+14155550101", phone)
        .replace("01JDPROCESSOREVENT0000000A", &message_id);
    (message_id, serde_json::from_str(&record).unwrap())
}
