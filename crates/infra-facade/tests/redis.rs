//! The facade against a real Redis (infra-testkit).
