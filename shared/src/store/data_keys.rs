//! Wrapped data keys of the field envelope ([`crate::envelope`]): one per function instance.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{aws_error, keys, s, Store, StoreError};

impl Store {
    /// Files a data key, wrapped by KMS; never overwrites one.
    pub async fn put_data_key(&self, id: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::data_key_pk(id)))
            .item("sk", s(keys::DATA_KEY_SK))
            .item("entity", s(keys::Entity::DataKey.as_str()))
            .item("wrapped", AttributeValue::B(Blob::new(wrapped)))
            .item("created_at", s(crate::time::Timestamp::now().to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    /// A data key as KMS wrapped it.
    pub async fn data_key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::data_key_pk(id)))
            .key("sk", s(keys::DATA_KEY_SK))
            .send()
            .await
            .map_err(|e| aws_error("GetItem", &e))?;
        Ok(out
            .item
            .and_then(|mut item| item.remove("wrapped"))
            .and_then(|v| v.as_b().ok().map(|b| b.as_ref().to_vec())))
    }
}
