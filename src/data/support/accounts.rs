//! Payment, account, invoice and service intents (see `intents`).

use super::intents::Intent;

pub(super) const ACCOUNT_INTENTS: &[Intent] = &[
    Intent {
        name: "payment_issue",
        topic: "payment",
        goal: "fix the payment problem",
        actions: &[
            "report a problem with my payment",
            "fix a [failed|declined] payment",
            "sort out a double charge on order {{Order Number}}",
            "pay for order {{Order Number}}",
        ],
        questions: &[
            "my payment keeps getting declined",
            "I was charged twice for {{Order Number}}",
            "why did my payment fail?",
        ],
        helps: &[
            "I'm sorry about the trouble. [Please try another payment method|Try paying again] under Payment Methods, or [check with your bank|ask your bank] about the block.",
            "I see the double charge on order {{Order Number}}; the extra payment [will be reversed|is being refunded] within three business days.",
            "Declines often come from the bank's fraud check; [a quick call to your bank|contacting your bank] usually fixes it, then retry at checkout.",
        ],
        security: true,
    },
    Intent {
        name: "check_payment_methods",
        topic: "payment",
        goal: "set up your payment method",
        actions: &[
            "see which payment methods you accept",
            "pay with PayPal",
            "add a new payment method",
            "know if you take gift cards",
        ],
        questions: &[
            "what payment options do you have?",
            "can I pay in installments?",
            "do you accept Apple Pay?",
        ],
        helps: &[
            "We accept credit and debit cards, PayPal, Apple Pay, Google Pay and gift cards[; all show at checkout|].",
            "You can [add or remove|manage] payment methods under Wallet in your account at {{Website URL}}.",
            "Installments are [available|offered] on orders over {{Currency Symbol}}100 through our payment partner at checkout.",
        ],
        security: true,
    },
    Intent {
        name: "recover_password",
        topic: "password",
        goal: "reset your password",
        actions: &[
            "reset my password",
            "recover my account",
            "get back into my {{Account Type}} account",
            "log in [again|after forgetting my password]",
        ],
        questions: &[
            "I forgot my password",
            "I'm locked out of my account",
            "the reset email never arrived",
        ],
        helps: &[
            "[Click|Use] Forgot Password on the sign-in page at {{Website URL}}, and we'll email you a reset link [within minutes|right away].",
            "I'll send a [password reset link|reset link] to the email on your account; it [works for one hour|expires in one hour].",
            "If the reset email is missing, check your spam folder or [request a new link|try again] from the sign-in page.",
        ],
        security: true,
    },
    Intent {
        name: "delete_account",
        topic: "account",
        goal: "close your account",
        actions: &[
            "delete my account",
            "close my {{Account Type}} account",
            "remove all my data",
            "[cancel|terminate] my account for good",
        ],
        questions: &[
            "I don't want an account anymore",
            "how do I get my data erased?",
        ],
        helps: &[
            "You can [close|delete] your account under Settings, Privacy, Delete Account; we'll email you to confirm.",
            "I've [started|opened] the deletion request; your {{Account Type}} account and data will be removed within 30 days.",
            "Before deleting, [you can download your data|download a copy of your data] under Settings; then choose Delete Account.",
        ],
        security: true,
    },
    Intent {
        name: "edit_account",
        topic: "account",
        goal: "update your account details",
        actions: &[
            "change my email address",
            "update my [name|phone number] on my account",
            "edit my {{Account Type}} profile",
            "change my account details",
        ],
        questions: &[
            "my name is spelled wrong on my account",
            "where do I change my profile info?",
        ],
        helps: &[
            "You can [edit|update] your name, email and phone under Profile at {{Website URL}}; changes [save instantly|apply right away].",
            "[Open|Go to] Settings, then Profile, [to change|and update] your details; we'll send a confirmation email.",
            "I can update the name on your {{Account Type}} account; [just reply with the correct spelling|please tell me the correct spelling].",
        ],
        security: true,
    },
    Intent {
        name: "create_account",
        topic: "account",
        goal: "set up your account",
        actions: &[
            "create an account",
            "sign up for a {{Account Type}} account",
            "open a new account",
            "register on your website",
        ],
        questions: &[
            "the sign up page gives me an error",
            "can I shop without an account?",
        ],
        helps: &[
            "[Click|Choose] Sign Up at {{Website URL}}, add your email and name, and confirm through the email we send.",
            "Creating a {{Account Type}} account [takes a minute|is quick]: use Sign Up on our website or in the app.",
            "You can also [check out as a guest|shop as a guest], and create an account later from your order email.",
        ],
        security: true,
    },
    Intent {
        name: "get_invoice",
        topic: "invoice",
        goal: "get your invoice {{Invoice Number}}",
        actions: &[
            "get [an|the] invoice for order {{Order Number}}",
            "download invoice {{Invoice Number}}",
            "receive a copy of my invoice",
            "get a [receipt|bill] for my purchase",
        ],
        questions: &[
            "I need invoice {{Invoice Number}} for my records",
            "where can I find my receipt?",
        ],
        helps: &[
            "You can [download|print] invoice {{Invoice Number}} as a PDF under My Orders at {{Website URL}}.",
            "I've [emailed|sent] a copy of invoice {{Invoice Number}} to the address on your account.",
            "Every invoice is [under|listed in] Order History; [open|select] order {{Order Number}} and choose Download Invoice.",
        ],
        security: false,
    },
    Intent {
        name: "check_invoice",
        topic: "invoice",
        goal: "check your invoice {{Invoice Number}}",
        actions: &[
            "check invoice {{Invoice Number}}",
            "understand a charge on my invoice",
            "correct the details on invoice {{Invoice Number}}",
            "see my past invoices",
        ],
        questions: &[
            "invoice {{Invoice Number}} shows the wrong amount",
            "why is there an extra fee on my invoice?",
        ],
        helps: &[
            "I [checked|reviewed] invoice {{Invoice Number}}: the extra line is the shipping fee for express delivery.",
            "All past invoices are under [Order History|My Orders] at {{Website URL}}, where you can view or download them.",
            "I'll [issue|send] a corrected invoice {{Invoice Number}} [within one business day|by tomorrow].",
        ],
        security: false,
    },
    Intent {
        name: "complaint",
        topic: "complaint",
        goal: "look into your complaint",
        actions: &[
            "file a complaint",
            "complain about [the service|my last order|a rude driver]",
            "report a bad experience",
            "leave feedback about order {{Order Number}}",
        ],
        questions: &[
            "I'm really unhappy with your service",
            "this is the third time my order arrived late",
            "your courier left my package in the rain",
        ],
        helps: &[
            "I'm [so|really] sorry about this. I've logged your complaint and a team lead will [reply|follow up] within 24 hours.",
            "That is not the experience we want for you. [I've shared|I've passed] your feedback on order {{Order Number}} to the team.",
            "I apologise for the trouble with order {{Order Number}}; I've added a credit to your account [for the inconvenience|as an apology].",
        ],
        security: false,
    },
    Intent {
        name: "contact_human_agent",
        topic: "agent",
        goal: "book a call with our team",
        actions: &[
            "talk to a [human|real person|live agent]",
            "speak with customer service",
            "reach someone on the phone",
            "get a call back",
        ],
        questions: &[
            "is there a human I can talk to?",
            "what is your phone number?",
            "I don't want to chat with a bot",
        ],
        helps: &[
            "Our team is [reachable|available] at {{Customer Support Phone Number}} during {{Customer Support Hours}}.",
            "I'm [transferring|connecting] you to a live agent now; the wait is usually [under five minutes|a few minutes].",
            "You can also [use Live Chat|start a live chat] on {{Website URL}} to reach a person during {{Customer Support Hours}}.",
        ],
        security: false,
    },
    Intent {
        name: "newsletter_subscription",
        topic: "newsletter",
        goal: "update your newsletter settings",
        actions: &[
            "unsubscribe from the newsletter",
            "stop [promotional|marketing] emails",
            "sign up for your newsletter",
            "get fewer emails from you",
        ],
        questions: &[
            "I keep getting your emails and I never signed up",
            "how do I stop the newsletter?",
        ],
        helps: &[
            "[Click|Use] Unsubscribe at the bottom of any newsletter, or turn emails off under Settings, Notifications.",
            "I've [removed|unsubscribed] your email from the newsletter; it may take up to two days to stop completely.",
            "You can [choose|pick] which emails you get under Notifications at {{Website URL}}.",
        ],
        security: false,
    },
    Intent {
        name: "place_order",
        topic: "order",
        goal: "complete your order",
        actions: &[
            "place an order",
            "buy [two|several] items at once",
            "order something for delivery to {{Delivery City}}",
            "finish my checkout",
        ],
        questions: &[
            "my cart keeps emptying at checkout",
            "can I order by phone?",
        ],
        helps: &[
            "Add the items to your cart at {{Website URL}}, then [choose|pick] Checkout and follow the steps to pay.",
            "If the cart empties, [try clearing your browser cache|sign in again] and add the items once more.",
            "You can also order by phone at {{Customer Support Phone Number}} during {{Customer Support Hours}}.",
        ],
        security: false,
    },
];
