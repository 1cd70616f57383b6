"""The signature is the Standard Webhooks scheme: checked against the scheme's published test
vector (the one in its specification and libraries' tests), and by the library's verifier."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.delivery import sign
from webhooks.models import new_secret

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = '{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_it_matches_the_published_vector():
    headers = sign(SECRET, MSG_ID, datetime.fromtimestamp(TIMESTAMP, UTC), PAYLOAD)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": EXPECTED,
    }
    # And by hand: HMAC-SHA256 of "id.timestamp.body" with the base64-decoded secret.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.{PAYLOAD}".encode(), hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == EXPECTED


def test_a_generated_secret_signs_what_the_verifier_accepts_and_nothing_else():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    body = '{"type":"job_run_ended"}'
    headers = sign(secret, "evt-1", datetime.now(UTC), body)
    assert Verifier(secret).verify(body, headers) == {"type": "job_run_ended"}
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body.replace("job", "jab"), headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(new_secret()).verify(body, headers)
    stale = sign(secret, "evt-1", datetime.fromtimestamp(TIMESTAMP, UTC), body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Verifier(secret).verify(body, stale)
