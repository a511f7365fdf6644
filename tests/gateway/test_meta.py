"""The Meta adapter: signatures, the handshake, and Messenger/Instagram/WhatsApp payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omniroute.gateway.channels.meta import MetaAdapter, signature_for
from omniroute.shared.errors import BadRequest, Forbidden, Unauthorized, Unprocessable
from omniroute.shared.events import Channel, Visibility, contact_id_for
from omniroute.shared.settings import Settings
from tests.gateway.conftest import VERIFY_TOKEN, delivery, meta_vector

WHATSAPP = "webhooks/whatsapp-cloud-api/pywa-updates"
MESSENGER = "webhooks/facebook-messenger/botbuilder-dotnet"

adapter = MetaAdapter()


def updates(shared_data: Path, name: str) -> dict[str, dict]:
    return json.loads((shared_data / WHATSAPP / name).read_text())


def parse(payload: object) -> list:
    return adapter.parse(delivery(payload))


def page(*messaging: dict, page_id: str = "PAGE") -> dict:
    return {"object": "page", "entry": [{"id": page_id, "time": 1, "messaging": list(messaging)}]}


class TestSignature:
    def test_real_vector_verifies(self, shared_data: Path, settings: Settings) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        headers = {"x-hub-signature-256": vector["x_hub_signature_256"]}
        adapter.verify(delivery(body, headers=headers), settings)

    def test_github_vector_matches_our_signer(self, shared_data: Path) -> None:
        vector = meta_vector(shared_data, "github_docs_official_vector")
        signature = signature_for(vector["secret"], vector["raw_body"].encode())
        assert signature == vector["x_hub_signature_256"]

    def test_uppercase_hex_is_accepted(self, shared_data: Path, settings: Settings) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        upper = "sha256=" + vector["x_hub_signature_256"].removeprefix("sha256=").upper()
        adapter.verify(delivery(body, headers={"x-hub-signature-256": upper}), settings)

    @pytest.mark.parametrize("mutation", ["tamper", "reserialise", "no_prefix", "missing", "sha1"])
    def test_rejections(self, shared_data: Path, settings: Settings, mutation: str) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        signature = vector["x_hub_signature_256"]
        if mutation == "tamper":
            body = body.replace(b"PyWa", b"PyWb")
        elif mutation == "reserialise":
            body = json.dumps(json.loads(body), indent=1).encode()
        elif mutation == "no_prefix":
            signature = signature.removeprefix("sha256=")
        elif mutation == "sha1":
            signature = "sha1=" + signature.removeprefix("sha256=")
        headers = {} if mutation == "missing" else {"x-hub-signature-256": signature}
        with pytest.raises(Unauthorized):
            adapter.verify(delivery(body, headers=headers), settings)

    def test_no_secret_configured_refuses_everything(
        self, shared_data: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("OMNIROUTE_META_APP_SECRET", raising=False)
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        headers = {"x-hub-signature-256": vector["x_hub_signature_256"]}
        with pytest.raises(Unauthorized):
            adapter.verify(delivery(body, headers=headers), Settings())


class TestHandshake:
    def query(self, token: str = VERIFY_TOKEN, mode: str = "subscribe") -> dict[str, str]:
        return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "CHALLENGE-1"}

    def test_matching_token_answers_the_challenge(self, settings: Settings) -> None:
        response = adapter.handshake(delivery(b"", query=self.query()), settings)
        assert response is not None
        assert response.body == b"CHALLENGE-1"
        assert response.media_type == "text/plain"

    def test_wrong_token_is_forbidden(self, settings: Settings) -> None:
        with pytest.raises(Forbidden):
            adapter.handshake(delivery(b"", query=self.query(token="guess")), settings)

    def test_no_configured_token_is_forbidden(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("OMNIROUTE_META_VERIFY_TOKEN", raising=False)
        with pytest.raises(Forbidden):
            adapter.handshake(delivery(b"", query=self.query(token="")), Settings())

    def test_other_mode_is_a_bad_request(self, settings: Settings) -> None:
        with pytest.raises(BadRequest):
            adapter.handshake(delivery(b"", query=self.query(mode="unsubscribe")), settings)


class TestWhatsAppMessages:
    def test_text_message(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "message.json")["text"])
        assert contact.channel is Channel.WHATSAPP
        assert contact.external_id == "wamid.xyzxyz"
        assert contact.contact_id == contact_id_for("whatsapp", "wamid.xyzxyz")
        assert contact.conversation_key == "1122334455667:972987654321"
        assert contact.text == "Body Text"
        assert contact.customer.phone == "+972987654321"
        assert contact.customer.name == "Test Name"
        assert contact.customer.provider_ids["wa_id"] == "972987654321"
        assert contact.occurred_at is not None
        assert int(contact.occurred_at.timestamp()) == 1697043223

    def test_signed_capture(self, shared_data: Path) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        [contact] = adapter.parse(delivery(body))
        assert contact.text == "Hey there! I am using PyWa."
        assert contact.customer.phone == "+972544401243"
        assert contact.customer.name == "PyWa Tests"

    def test_document_is_an_attachment_with_its_caption(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "message.json")["document"])
        assert contact.text == "caption"
        [attachment] = contact.attachments
        assert attachment.filename == "filename.pdf"
        assert attachment.content_type == "application/pdf"
        assert contact.metadata["forwarded"] == "true"

    @pytest.mark.parametrize(
        "kind", ["image", "video", "audio", "voice", "static_sticker", "media_with_url"]
    )
    def test_media_messages_become_contacts(self, shared_data: Path, kind: str) -> None:
        [contact] = parse(updates(shared_data, "message.json")[kind])
        assert len(contact.attachments) == 1

    def test_reply_keeps_the_context(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "message.json")["reply"])
        assert contact.text == "replied text"
        assert "reply_to" in contact.metadata

    def test_button_reply_is_the_customer_choice(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "callback_button.json")["button"])
        assert contact.text == "title"

    def test_location(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "message.json")["current_location"])
        assert contact.text.startswith("Location:")
        assert "12.25089" in contact.text


class TestWhatsAppIgnored:
    @pytest.mark.parametrize(
        ("file", "key"),
        [
            ("message_status.json", "sent"),
            ("message_status.json", "delivered"),
            ("message_status.json", "read"),
            ("message_status.json", "failed"),
            ("outgoing_message.json", "text"),
            ("message.json", "reaction"),
            ("system.json", "phone_number_change"),
            ("deleted_message.json", "revoke"),
            ("template_status_update.json", "approved"),
            ("account_update.json", "account_deleted"),
            ("call_status.json", "call_status"),
        ],
    )
    def test_non_messages_give_no_contacts(self, shared_data: Path, file: str, key: str) -> None:
        assert parse(updates(shared_data, file)[key]) == []

    def test_every_fixture_is_handled(self, shared_data: Path) -> None:
        seen = 0
        for path in sorted((shared_data / WHATSAPP).glob("*.json")):
            for payload in json.loads(path.read_text()).values():
                for contact in parse(payload):
                    assert contact.channel is Channel.WHATSAPP
                    assert contact.text or contact.attachments
                seen += 1
        assert seen > 70


class TestMessenger:
    def test_text_message(self, shared_data: Path) -> None:
        [contact] = adapter.parse(delivery((shared_data / MESSENGER / "Payload.json").read_bytes()))
        assert contact.channel is Channel.MESSENGER
        assert contact.external_id == "AAAA-BBBB-CCCC"
        assert contact.text == "text"
        assert contact.customer.provider_ids == {"messenger_psid": "0"}
        assert contact.conversation_key == "0:0"

    def test_bom_payload_with_standby(self, shared_data: Path) -> None:
        raw = (shared_data / MESSENGER / "PayloadWithStandby.json").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        [contact] = adapter.parse(delivery(raw))
        assert contact.conversation_key == "page1:0"

    @pytest.mark.parametrize(
        "name",
        [
            "PayloadWithPassThreadControl.json",
            "PayloadWithTakeThreadControl.json",
            "PayloadWithRequestThreadControl.json",
            "PayloadWithReferral.json",
        ],
    )
    def test_handover_and_referral_give_no_contacts(self, shared_data: Path, name: str) -> None:
        assert adapter.parse(delivery((shared_data / MESSENGER / name).read_bytes())) == []

    def test_botbuilder_activities(self, shared_data: Path) -> None:
        events = json.loads((shared_data / MESSENGER / "FacebookMessages.json").read_text())
        contacts = parse(page(*events, page_id="123123123"))
        assert [c.text for c in contacts] == ["Test Hi!", "", "Say Hello"]
        assert len(contacts[1].attachments) == 3
        assert contacts[2].metadata["event"] == "postback"

    def test_message_without_mid_is_stable(self, shared_data: Path) -> None:
        events = json.loads((shared_data / MESSENGER / "FacebookMessages.json").read_text())
        first = parse(page(*events, page_id="123123123"))
        again = parse(page(*events, page_id="123123123"))
        assert [c.contact_id for c in first] == [c.contact_id for c in again]

    def test_echo_is_ignored(self) -> None:
        echo = {
            "sender": {"id": "PAGE"},
            "recipient": {"id": "USER"},
            "timestamp": 1,
            "message": {"mid": "m1", "text": "our reply", "is_echo": True},
        }
        assert parse(page(echo)) == []

    def test_page_speaking_without_echo_flag_is_ignored(self) -> None:
        outbound = {
            "sender": {"id": "PAGE"},
            "recipient": {"id": "USER"},
            "message": {"mid": "m1", "text": "x"},
        }
        assert parse(page(outbound)) == []

    def test_delivery_and_read_are_ignored(self) -> None:
        delivered = {"sender": {"id": "U"}, "recipient": {"id": "PAGE"}, "delivery": {"mids": []}}
        read = {"sender": {"id": "U"}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}}
        assert parse(page(delivered, read)) == []

    def test_one_contact_per_customer_message(self) -> None:
        events = [
            {
                "sender": {"id": f"U{i}"},
                "recipient": {"id": "PAGE"},
                "message": {"mid": f"m{i}", "text": "hi"},
            }
            for i in range(3)
        ]
        contacts = parse(page(*events))
        assert [c.external_id for c in contacts] == ["m0", "m1", "m2"]
        assert len({c.conversation_id for c in contacts}) == 3


class TestInstagram:
    def test_direct_message(self) -> None:
        payload = {
            "object": "instagram",
            "entry": [
                {
                    "id": "IG",
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": "IGSID"},
                            "recipient": {"id": "IG"},
                            "timestamp": 1700000000000,
                            "message": {"mid": "ig-m1", "text": "¿tenéis talla M?"},
                        }
                    ],
                }
            ],
        }
        [contact] = parse(payload)
        assert contact.channel is Channel.INSTAGRAM
        assert contact.customer.provider_ids == {"instagram_id": "IGSID"}
        assert contact.visibility is Visibility.PRIVATE

    def test_public_comment_is_public(self) -> None:
        payload = {
            "object": "instagram",
            "entry": [
                {
                    "id": "IG",
                    "time": 1,
                    "changes": [
                        {
                            "field": "comments",
                            "value": {
                                "id": "c1",
                                "text": "Still waiting for my refund!",
                                "from": {"id": "U1", "username": "ana"},
                                "media": {"id": "MEDIA1"},
                            },
                        }
                    ],
                }
            ],
        }
        [contact] = parse(payload)
        assert contact.visibility is Visibility.PUBLIC
        assert contact.customer.handle == "@ana"
        assert contact.external_id == "c1"


class TestInstagramMentions:
    def mention(self, value: dict) -> dict:
        return {
            "object": "instagram",
            "entry": [
                {"id": "IG", "time": 1700000000, "changes": [{"field": "mentions", "value": value}]}
            ],
        }

    def test_a_comment_mention_is_public_work_naming_where_it_is(self) -> None:
        [contact] = parse(self.mention({"media_id": "MEDIA9", "comment_id": "C77"}))
        assert contact.channel is Channel.INSTAGRAM
        assert contact.visibility is Visibility.PUBLIC
        assert contact.metadata["event"] == "mention"
        assert contact.metadata["media_id"] == "MEDIA9"
        assert contact.metadata["comment_id"] == "C77"
        assert "MEDIA9" in contact.text
        assert "C77" in contact.text
        assert contact.conversation_key == "mention:MEDIA9"

    def test_a_caption_mention_and_the_same_mention_again(self) -> None:
        [caption] = parse(self.mention({"media_id": "MEDIA9"}))
        assert "caption" in caption.text
        [again] = parse(self.mention({"media_id": "MEDIA9"}))
        assert again.contact_id == caption.contact_id  # a retry creates nothing new
        [comment] = parse(self.mention({"media_id": "MEDIA9", "comment_id": "C77"}))
        assert comment.contact_id != caption.contact_id
        assert comment.conversation_id == caption.conversation_id  # one post, one conversation

    def test_a_mention_without_media_is_ignored(self) -> None:
        assert parse(self.mention({"comment_id": "C77"})) == []


class TestFacebookComments:
    def feed(self, author_id: str, verb: str = "add") -> dict:
        value = {
            "item": "comment",
            "verb": verb,
            "comment_id": "post1_c1",
            "post_id": "post1",
            "message": "Your app charged me twice",
            "from": {"id": author_id, "name": "Ana"},
            "created_time": 1700000000,
        }
        return {
            "object": "page",
            "entry": [{"id": "PAGE", "changes": [{"field": "feed", "value": value}]}],
        }

    def test_customer_comment_is_a_public_contact(self) -> None:
        [contact] = parse(self.feed("USER"))
        assert contact.channel is Channel.MESSENGER
        assert contact.visibility is Visibility.PUBLIC
        assert contact.customer.name == "Ana"
        assert contact.conversation_key == "post1:USER"

    def test_our_own_comment_is_ignored(self) -> None:
        assert parse(self.feed("PAGE")) == []

    def test_removed_comment_is_ignored(self) -> None:
        assert parse(self.feed("USER", verb="remove")) == []

    def visitor_post(self, author_id: str, item: str = "status", verb: str = "add") -> dict:
        value = {
            "item": item,
            "verb": verb,
            "post_id": "PAGE_post9",
            "message": "Tres semanas esperando el reembolso. ¿Alguien me contesta?",
            "from": {"id": author_id, "name": "Luis"},
            "created_time": 1700000000,
            "published": 1,
        }
        return {
            "object": "page",
            "entry": [{"id": "PAGE", "changes": [{"field": "feed", "value": value}]}],
        }

    @pytest.mark.parametrize("item", ["status", "post", "photo"])
    def test_a_visitor_post_on_our_page_is_public_work(self, item: str) -> None:
        [contact] = parse(self.visitor_post("USER", item))
        assert contact.channel is Channel.MESSENGER
        assert contact.visibility is Visibility.PUBLIC
        assert contact.metadata["event"] == "post"
        assert contact.external_id == "PAGE_post9"
        assert contact.text.startswith("Tres semanas")
        assert contact.customer.provider_ids == {"facebook_id": "USER"}

    def test_a_comment_on_that_post_by_its_author_joins_it(self) -> None:
        [post] = parse(self.visitor_post("USER"))
        comment = self.feed("USER")
        comment["entry"][0]["changes"][0]["value"]["post_id"] = "PAGE_post9"
        [reply] = parse(comment)
        assert reply.conversation_id == post.conversation_id

    def test_our_own_posts_likes_and_removals_are_not_work(self) -> None:
        assert parse(self.visitor_post("PAGE")) == []
        assert parse(self.visitor_post("USER", verb="remove")) == []
        assert parse(self.visitor_post("USER", item="like")) == []


class TestMalformed:
    def test_unknown_object_is_unprocessable(self) -> None:
        with pytest.raises(Unprocessable):
            parse({"object": "permissions", "entry": []})

    def test_entry_must_be_a_list(self) -> None:
        with pytest.raises(Unprocessable):
            parse({"object": "page", "entry": {"id": "x"}})

    def test_not_json_is_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            adapter.parse(delivery(b"<xml/>"))

    def test_junk_items_are_skipped(self) -> None:
        assert parse({"object": "page", "entry": [1, "x", {"messaging": [None, 3]}]}) == []


def instagram(*messaging: dict, standby: list[dict] | None = None) -> dict:
    entry: dict = {"id": "IG", "time": 1, "messaging": list(messaging)}
    if standby is not None:
        entry["standby"] = standby
    return {"object": "instagram", "entry": [entry]}


class TestHandoverAndStandby:
    def test_standby_messages_are_recorded_and_flagged(self) -> None:
        event = {
            "sender": {"id": "USER"},
            "recipient": {"id": "PAGE"},
            "timestamp": 1700000000000,
            "message": {"mid": "m-standby", "text": "is anyone there?"},
        }
        payload = {"object": "page", "entry": [{"id": "PAGE", "time": 1, "standby": [event]}]}
        [contact] = parse(payload)
        assert contact.metadata["standby"] == "true"
        assert contact.text == "is anyone there?"
        # The same message later seen on the primary channel is the same contact.
        [primary] = parse(page(event))
        assert primary.contact_id == contact.contact_id
        assert "standby" not in primary.metadata

    def test_standby_echo_of_the_owner_app_is_ignored(self) -> None:
        echo = {
            "sender": {"id": "PAGE"},
            "recipient": {"id": "USER"},
            "message": {"mid": "m-bot", "text": "I am a bot", "is_echo": True, "app_id": 1},
        }
        payload = {"object": "page", "entry": [{"id": "PAGE", "time": 1, "standby": [echo]}]}
        assert parse(payload) == []

    @pytest.mark.parametrize(
        "event",
        [
            {"pass_thread_control": {"new_owner_app_id": "123", "metadata": "to agents"}},
            {"take_thread_control": {"previous_owner_app_id": "123"}},
            {"request_thread_control": {"requested_owner_app_id": "123"}},
        ],
    )
    def test_thread_control_events_create_nothing(self, event: dict) -> None:
        assert parse(page({"sender": {"id": "USER"}, "recipient": {"id": "PAGE"}, **event})) == []


class TestInstagramStories:
    def test_story_mention_is_a_contact_with_the_story(self) -> None:
        event = {
            "sender": {"id": "IGSID"},
            "recipient": {"id": "IG"},
            "timestamp": 1700000000000,
            "message": {
                "mid": "ig-story-1",
                "attachments": [
                    {"type": "story_mention", "payload": {"url": "https://lookaside.fb/s/1"}}
                ],
            },
        }
        [contact] = parse(instagram(event))
        assert contact.metadata["event"] == "story_mention"
        [story] = contact.attachments
        assert story.url == "https://lookaside.fb/s/1"

    def test_story_reply_keeps_the_story(self) -> None:
        event = {
            "sender": {"id": "IGSID"},
            "recipient": {"id": "IG"},
            "message": {
                "mid": "ig-story-2",
                "text": "¿Cuánto cuesta?",
                "reply_to": {"story": {"url": "https://lookaside.fb/s/2", "id": "ST2"}},
            },
        }
        [contact] = parse(instagram(event))
        assert contact.metadata["event"] == "story_reply"
        assert contact.metadata["story_id"] == "ST2"
        assert contact.text == "¿Cuánto cuesta?"

    def test_comment_reply_and_live_comment(self) -> None:
        payload = {
            "object": "instagram",
            "entry": [
                {
                    "id": "IG",
                    "time": 1,
                    "changes": [
                        {
                            "field": "comments",
                            "value": {
                                "id": "c2",
                                "parent_id": "c1",
                                "text": "still nothing",
                                "from": {"id": "U1", "username": "ana"},
                                "media": {"id": "MEDIA1"},
                            },
                        },
                        {
                            "field": "live_comments",
                            "value": {
                                "id": "c3",
                                "text": "hello from the live",
                                "from": {"id": "U2", "username": "bob"},
                                "media": {"id": "LIVE1"},
                            },
                        },
                    ],
                }
            ],
        }
        reply, live = parse(payload)
        assert reply.metadata["reply_to"] == "c1"
        assert reply.visibility is Visibility.PUBLIC
        assert live.external_id == "c3"


class TestWhatsAppInteractive:
    def test_button_reply(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "callback_button.json")["button"])
        assert contact.text == "title"
        assert contact.metadata["reply_id"] == "callback_data"

    def test_quick_reply_button(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "callback_button.json")["quick_reply"])
        assert contact.text == "title"
        assert contact.metadata["reply_id"] == "callback_data"

    def test_list_reply(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "callback_selection.json")["callback"])
        assert contact.text == "title"
        assert contact.metadata["message_type"] == "interactive"
        assert contact.metadata["reply_id"] == "callback_data"

    def test_media_id_is_kept_for_fetching(self, shared_data: Path) -> None:
        [contact] = parse(updates(shared_data, "message.json")["image"])
        [image] = contact.attachments
        assert image.provider_id == "65463453"
        assert image.content_type == "image/jpeg"
