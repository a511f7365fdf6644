"""X Account Activity webhooks: CRC, signatures, direct messages and public mentions.

The payloads follow the documented Account Activity format (for_user_id, direct_message_events
with users, tweet_create_events with v1.1 tweet objects).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json

import pytest

from omniroute.gateway.channels.x import XAdapter, signature_for
from omniroute.shared.errors import Unprocessable
from omniroute.shared.events import Channel, Visibility
from tests.gateway.conftest import X_SECRET, Gateway, delivery

OUR_ACCOUNT = "4337869213"
CUSTOMER = "3001969357"

DM = {
    "for_user_id": OUR_ACCOUNT,
    "direct_message_events": [
        {
            "type": "message_create",
            "id": "954491830116155396",
            "created_timestamp": "1516403560557",
            "message_create": {
                "target": {"recipient_id": OUR_ACCOUNT},
                "sender_id": CUSTOMER,
                "source_app_id": "13090192",
                "message_data": {
                    "text": "My order #4411 never arrived",
                    "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
                    "attachment": {
                        "type": "media",
                        "media": {
                            "id_str": "954491828883628032",
                            "media_url_https": "https://ton.twitter.com/1.1/ton/data/dm/1.jpg",
                            "type": "photo",
                        },
                    },
                },
            },
        }
    ],
    "apps": {"13090192": {"id": "13090192", "name": "Twitter for iPhone"}},
    "users": {
        CUSTOMER: {
            "id": CUSTOMER,
            "created_timestamp": "1422556069340",
            "name": "Jordan Brinks",
            "screen_name": "furiousf7",
            "protected": False,
            "verified": False,
        },
        OUR_ACCOUNT: {
            "id": OUR_ACCOUNT,
            "created_timestamp": "1448312972328",
            "name": "Omniroute Support",
            "screen_name": "OmnirouteHelp",
        },
    },
}

MENTION = {
    "for_user_id": OUR_ACCOUNT,
    "user_has_blocked": False,
    "tweet_create_events": [
        {
            "created_at": "Wed Oct 10 20:19:24 +0000 2018",
            "id": 1050118621198921728,
            "id_str": "1050118621198921728",
            "text": "@OmnirouteHelp two weeks without internet and nobody answers",
            "display_text_range": [0, 60],
            "source": "<a href='http://twitter.com'>Twitter Web Client</a>",
            "truncated": False,
            "in_reply_to_status_id": None,
            "in_reply_to_status_id_str": None,
            "in_reply_to_user_id_str": OUR_ACCOUNT,
            "in_reply_to_screen_name": "OmnirouteHelp",
            "user": {
                "id": 6253282,
                "id_str": "6253282",
                "name": "Ana López",
                "screen_name": "AnaLopez",
            },
            "entities": {
                "user_mentions": [{"screen_name": "OmnirouteHelp", "id_str": OUR_ACCOUNT}]
            },
            "timestamp_ms": "1539202764000",
        }
    ],
}


def sign(body: bytes, secret: str = X_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "x-twitter-webhooks-signature": signature_for(secret, body),
    }


def parse(payload: object) -> list:
    return XAdapter().parse(delivery(payload))


class TestCrc:
    async def test_challenge_is_answered_with_the_hmac(self, gateway: Gateway) -> None:
        response = await gateway.client.get("/v1/channels/x", params={"crc_token": "abc123"})
        assert response.status_code == 200
        digest = hmac.new(X_SECRET.encode(), b"abc123", hashlib.sha256).digest()
        expected = "sha256=" + base64.b64encode(digest).decode()
        assert response.json() == {"response_token": expected}

    async def test_missing_token_is_400(self, gateway: Gateway) -> None:
        response = await gateway.client.get("/v1/channels/x")
        assert response.status_code == 400

    async def test_no_secret_configured_is_403(self, gateway: Gateway) -> None:
        gateway.app.state.settings.gateway.x_consumer_secret = None
        response = await gateway.client.get("/v1/channels/x", params={"crc_token": "abc"})
        assert response.status_code == 403


class TestSignature:
    async def test_valid_signature_is_accepted(self, gateway: Gateway) -> None:
        body = json.dumps(DM).encode()
        response = await gateway.client.post("/v1/channels/x", content=body, headers=sign(body))
        assert response.status_code == 200
        assert len(response.json()["contacts"]) == 1

    async def test_tampered_body_is_401(self, gateway: Gateway) -> None:
        body = json.dumps(DM).encode()
        tampered = body.replace(b"never arrived", b"arrived fine")
        response = await gateway.client.post("/v1/channels/x", content=tampered, headers=sign(body))
        assert response.status_code == 401
        assert gateway.published == []

    async def test_wrong_secret_is_401(self, gateway: Gateway) -> None:
        body = json.dumps(DM).encode()
        response = await gateway.client.post(
            "/v1/channels/x", content=body, headers=sign(body, "other")
        )
        assert response.status_code == 401

    async def test_missing_signature_is_401(self, gateway: Gateway) -> None:
        response = await gateway.client.post("/v1/channels/x", json=DM)
        assert response.status_code == 401

    async def test_replay_three_times_gives_the_same_ids(self, gateway: Gateway) -> None:
        body = json.dumps(MENTION).encode()
        answers = [
            (await gateway.client.post("/v1/channels/x", content=body, headers=sign(body))).json()
            for _ in range(3)
        ]
        assert answers[0] == answers[1] == answers[2]

    async def test_malformed_json_is_400(self, gateway: Gateway) -> None:
        body = b'{"for_user_id": '
        response = await gateway.client.post("/v1/channels/x", content=body, headers=sign(body))
        assert response.status_code == 400


class TestDirectMessages:
    def test_dm_is_a_private_contact(self) -> None:
        [contact] = parse(DM)
        assert contact.channel is Channel.X
        assert contact.visibility is Visibility.PRIVATE
        assert contact.external_id == "954491830116155396"
        assert contact.text == "My order #4411 never arrived"
        assert contact.customer.handle == "furiousf7"
        assert contact.customer.name == "Jordan Brinks"
        assert contact.customer.provider_ids == {"x_user_id": CUSTOMER}
        assert contact.occurred_at is not None
        assert contact.occurred_at.year == 2018
        [attachment] = contact.attachments
        assert attachment.provider_id == "954491828883628032"
        assert attachment.content_type == "image/*"

    def test_our_own_dm_is_ignored(self) -> None:
        echo = copy.deepcopy(DM)
        create = echo["direct_message_events"][0]["message_create"]
        create["sender_id"], create["target"]["recipient_id"] = OUR_ACCOUNT, CUSTOMER
        assert parse(echo) == []

    def test_dms_of_one_customer_share_a_conversation(self) -> None:
        second = copy.deepcopy(DM)
        second["direct_message_events"][0]["id"] = "954491830116155397"
        [one], [two] = parse(DM), parse(second)
        assert one.conversation_id == two.conversation_id
        assert one.contact_id != two.contact_id

    def test_typing_and_read_events_create_nothing(self) -> None:
        payload = {
            "for_user_id": OUR_ACCOUNT,
            "direct_message_indicate_typing_events": [
                {"created_timestamp": "1518127183443", "sender_id": CUSTOMER}
            ],
        }
        assert parse(payload) == []


class TestTweets:
    def test_mention_is_a_public_contact(self) -> None:
        [contact] = parse(MENTION)
        assert contact.visibility is Visibility.PUBLIC
        assert contact.external_id == "1050118621198921728"
        assert contact.text.endswith("nobody answers")
        assert contact.customer.handle == "analopez"
        assert contact.customer.provider_ids == {"x_user_id": "6253282"}

    def test_replies_join_the_customer_public_thread(self) -> None:
        reply = copy.deepcopy(MENTION)
        tweet = reply["tweet_create_events"][0]
        tweet["id_str"] = "1050118621198921999"
        tweet["in_reply_to_status_id_str"] = "1050118600000000000"
        [first], [second] = parse(MENTION), parse(reply)
        assert first.conversation_id == second.conversation_id
        assert second.metadata["in_reply_to"] == "1050118600000000000"

    def test_extended_tweet_full_text_is_used(self) -> None:
        long = copy.deepcopy(MENTION)
        tweet = long["tweet_create_events"][0]
        tweet["truncated"] = True
        tweet["extended_tweet"] = {"full_text": "@OmnirouteHelp " + "very long " * 30}
        [contact] = parse(long)
        assert contact.text.count("very long") == 30

    def test_our_own_tweet_is_ignored(self) -> None:
        own = copy.deepcopy(MENTION)
        own["tweet_create_events"][0]["user"]["id_str"] = OUR_ACCOUNT
        assert parse(own) == []

    def test_retweets_are_ignored(self) -> None:
        retweet = copy.deepcopy(MENTION)
        retweet["tweet_create_events"][0]["retweeted_status"] = {"id_str": "1"}
        assert parse(retweet) == []

    @pytest.mark.parametrize(
        "key", ["favorite_events", "follow_events", "block_events", "tweet_delete_events"]
    )
    def test_other_activity_creates_nothing(self, key: str) -> None:
        assert parse({"for_user_id": OUR_ACCOUNT, key: [{"id": "1"}]}) == []

    def test_unknown_payload_is_422(self) -> None:
        with pytest.raises(Unprocessable):
            parse({"hello": "world"})
