//! The customer-support intents, modelled on the Bitext domain but written
//! for this project. Texts use `[a|b]` alternatives (see `alt`) and keep
//! Bitext-style placeholders (`{{Order Number}}`) literally. The tables are
//! in `orders` and `accounts`.

use std::sync::LazyLock;

/// One intent: what customers ask and what a helpful agent answers.
pub struct Intent {
    /// Bitext-style snake-case name, written to the `intent` field.
    pub name: &'static str,
    /// A noun for dismissive replies ("another refund question").
    pub topic: &'static str,
    /// What the agent does for the customer, in the second person
    /// ("cancel your order {{Order Number}}"): used by every reply kind.
    pub goal: &'static str,
    /// Infinitive verb phrases the customer frames ("I need to …").
    pub actions: &'static [&'static str],
    /// Whole customer sentences that need no frame.
    pub questions: &'static [&'static str],
    /// Helpful core sentences of a good reply.
    pub helps: &'static [&'static str],
    /// Payment or account topics: good replies may add a security reminder.
    pub security: bool,
}

/// Every intent, in a fixed order (the generator balances rows over them).
pub static INTENTS: LazyLock<Vec<&'static Intent>> = LazyLock::new(|| {
    super::orders::ORDER_INTENTS
        .iter()
        .chain(super::accounts::ACCOUNT_INTENTS)
        .collect()
});
