"""The local stack: Apache Kafka (KRaft) and DynamoDB Local from Maven Central jars."""
