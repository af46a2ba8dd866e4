"""The billing models one operator runs side by side (BILLING_RULES.md, "Who pays")."""

from __future__ import annotations

from enum import StrEnum


class BillingModel(StrEnum):
    """What a session is reported under; the values are the contract's `billing_model`."""

    OPEN_ACCESS = "open_access"
    AD_HOC_TERMINAL = "ad_hoc_terminal"
    CORPORATE = "corporate"
    SUBSCRIPTION_PREPAID = "subscription_prepaid"
    SUBSCRIPTION_POSTPAID = "subscription_postpaid"
    WALLET = "wallet"
    PRE_AUTHORIZATION = "pre_authorization"
    POST_PAID = "post_paid"


# A driver's own per-session model (rule 5): what pays whatever no sponsor covers.
OWN_MODELS: frozenset[BillingModel] = frozenset(
    {BillingModel.WALLET, BillingModel.PRE_AUTHORIZATION, BillingModel.POST_PAID}
)
