//! Order, delivery, refund and return intents (see `intents`).

use super::intents::Intent;

pub(super) const ORDER_INTENTS: &[Intent] = &[
    Intent {
        name: "cancel_order",
        topic: "order",
        goal: "cancel your order {{Order Number}}",
        actions: &[
            "cancel [order|purchase] {{Order Number}}",
            "cancel my [last|latest|most recent] order",
            "cancel the order I [placed|made] [yesterday|this morning|last night]",
            "call off order {{Order Number}}",
            "stop order {{Order Number}} before it ships",
        ],
        questions: &[
            "I don't want order {{Order Number}} anymore",
            "can order {{Order Number}} still be cancelled?",
            "I ordered the wrong thing, can you cancel it?",
        ],
        helps: &[
            "[Open|Go to] [My Orders|Order History] at {{Website URL}}, [select|pick] order {{Order Number}} and [choose|click] Cancel Order.",
            "If order {{Order Number}} has not shipped yet, [I can cancel it for you right now|the Cancel button in your account stops it].",
            "I have [started|requested] the cancellation of order {{Order Number}}; a confirmation email [will follow shortly|is on its way].",
        ],
        security: false,
    },
    Intent {
        name: "change_order",
        topic: "order",
        goal: "update your order {{Order Number}}",
        actions: &[
            "change [order|my order] {{Order Number}}",
            "[add|remove] an item [to|from] order {{Order Number}}",
            "swap the size in my [order|purchase]",
            "edit [my|the] order I just placed",
            "update the quantity on order {{Order Number}}",
        ],
        questions: &[
            "I picked the wrong color in order {{Order Number}}",
            "can I still modify {{Order Number}}?",
        ],
        helps: &[
            "Orders can be edited until they ship: [open|find] order {{Order Number}} under My Orders and [choose|select] Edit Items.",
            "I can [update|adjust] order {{Order Number}} for you; just tell me which item, size or quantity you want.",
            "[Open|Visit] {{Website URL}}, go to My Orders and [pick|select] {{Order Number}} to change items before it ships.",
        ],
        security: false,
    },
    Intent {
        name: "track_order",
        topic: "order",
        goal: "find your order {{Order Number}}",
        actions: &[
            "track [order|package|parcel] {{Order Number}}",
            "[see|check] where my [order|package] is",
            "find out the status of order {{Order Number}}",
            "follow my [delivery|shipment]",
        ],
        questions: &[
            "where is my order {{Order Number}}?",
            "my package {{Order Number}} still hasn't arrived",
            "has order {{Order Number}} shipped yet?",
        ],
        helps: &[
            "Order {{Order Number}} is [on its way|in transit]; the tracking link [is in|was sent to] your shipping confirmation email.",
            "You can [follow|track] order {{Order Number}} live under Track Order at {{Website URL}}.",
            "[I checked|I looked up] order {{Order Number}}: it has shipped and [should arrive within two days|is out for delivery].",
        ],
        security: false,
    },
    Intent {
        name: "delivery_period",
        topic: "delivery",
        goal: "check the delivery date of {{Order Number}}",
        actions: &[
            "know when order {{Order Number}} will [arrive|be delivered]",
            "check the delivery [date|time] of my order",
            "find out how long shipping takes",
            "get an estimated delivery date",
        ],
        questions: &[
            "when will my package arrive?",
            "how long does delivery take to {{Delivery City}}?",
            "is order {{Order Number}} going to arrive this week?",
        ],
        helps: &[
            "Standard delivery takes three to five business days; [your estimate|the exact date] is shown under order {{Order Number}} at {{Website URL}}.",
            "Order {{Order Number}} is [expected|scheduled] to arrive within [two|three] business days.",
            "Delivery to {{Delivery City}} usually takes [three|four] business days, and express shipping [takes one|is faster].",
        ],
        security: false,
    },
    Intent {
        name: "change_shipping_address",
        topic: "address",
        goal: "update the shipping address for {{Order Number}}",
        actions: &[
            "change the [shipping|delivery] address [on|for] order {{Order Number}}",
            "update my [shipping|delivery] address",
            "send order {{Order Number}} to a different address",
            "fix a typo in my address",
        ],
        questions: &[
            "I moved, can you ship {{Order Number}} to my new address?",
            "the address on order {{Order Number}} is wrong",
        ],
        helps: &[
            "Before an order ships you can edit the address: open {{Order Number}} under My Orders and [choose|select] Change Address.",
            "I can [update|correct] the address on order {{Order Number}}; [please type the new street, city and postal code|what is the new street and postal code]?",
            "Your saved addresses are under Profile at {{Website URL}}, and new orders will use the one you [mark as default|choose].",
        ],
        security: false,
    },
    Intent {
        name: "delivery_options",
        topic: "shipping",
        goal: "set your shipping option",
        actions: &[
            "see the shipping options",
            "know which delivery methods you offer",
            "choose express [shipping|delivery]",
            "ship to {{Delivery Country}}",
        ],
        questions: &[
            "do you offer next-day delivery?",
            "what shipping methods are available?",
            "can I pick up my order in store?",
        ],
        helps: &[
            "We offer standard, express and next-day shipping, plus [free store pickup|pickup points]; [all prices|the options] show at checkout.",
            "Express delivery [arrives in one to two days|takes one or two days], and you can [choose|select] it at checkout on {{Website URL}}.",
            "We ship to {{Delivery Country}} [with standard and express options|by standard or express mail]; the full list is on our Shipping page.",
        ],
        security: false,
    },
    Intent {
        name: "track_refund",
        topic: "refund",
        goal: "check your refund for {{Order Number}}",
        actions: &[
            "check the status of my refund",
            "track the refund for order {{Order Number}}",
            "know when I will get my money back",
            "see if my refund [went through|was processed]",
        ],
        questions: &[
            "where is my refund for {{Order Number}}?",
            "I still haven't received my refund",
            "has the refund of {{Refund Amount}} been sent?",
        ],
        helps: &[
            "The refund for order {{Order Number}} [was issued|is approved] and [should reach your account|will appear] within five business days.",
            "You can [see|check] every refund and its status under My Orders at {{Website URL}}.",
            "[I checked|I looked]: your refund of {{Refund Amount}} is [processing|on its way] and usually arrives in three to five days.",
        ],
        security: false,
    },
    Intent {
        name: "get_refund",
        topic: "refund",
        goal: "start a refund for {{Order Number}}",
        actions: &[
            "get a refund for order {{Order Number}}",
            "request a refund",
            "get my money back for [a broken|a damaged|the wrong] item",
            "claim a refund on {{Order Number}}",
        ],
        questions: &[
            "I want my money back",
            "the item in {{Order Number}} arrived damaged, can I get a refund?",
        ],
        helps: &[
            "I'm sorry about that. I have opened a refund request for order {{Order Number}}; [you'll get an email|we'll email you] once it's approved.",
            "You can request a refund under My Orders: [pick|select] {{Order Number}}, choose Request Refund and [tell us|add] the reason.",
            "Refunds go back to your original payment method within five business days after we receive the item.",
        ],
        security: false,
    },
    Intent {
        name: "check_refund_policy",
        topic: "return",
        goal: "return your item",
        actions: &[
            "know your return policy",
            "return an item I bought",
            "check if I can return a [sale|used|gift] item",
            "send back order {{Order Number}}",
        ],
        questions: &[
            "what is your return policy?",
            "how many days do I have to return something?",
            "are returns free?",
        ],
        helps: &[
            "You can return most items within 30 days for a full refund, [and return shipping is free|with a free return label].",
            "To return an item, open order {{Order Number}}, choose Return Item and [print|download] the prepaid label.",
            "Our full return policy is on {{Website URL}}; sale items can be returned within [14|30] days.",
        ],
        security: false,
    },
    Intent {
        name: "check_cancellation_fee",
        topic: "fee",
        goal: "check the cancellation fee",
        actions: &[
            "know if there is a cancellation fee",
            "check the fee for cancelling my [plan|subscription|order]",
            "find out what cancelling costs",
        ],
        questions: &[
            "do you charge a fee if I cancel?",
            "how much is the cancellation fee?",
            "is cancelling my {{Account Type}} plan free?",
        ],
        helps: &[
            "Cancelling is free before an order ships; [after that|once shipped] a return is needed instead.",
            "There is no fee to cancel a {{Account Type}} plan [within the first 14 days|in the first two weeks]; the full terms are on {{Website URL}}.",
            "[Good news|No worries]: orders that haven't shipped can be cancelled at no cost.",
        ],
        security: false,
    },
];
