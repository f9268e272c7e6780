//! The live operator dashboard of the infra stack (work in progress, issue #16).
