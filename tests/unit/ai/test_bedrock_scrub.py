"""The Bedrock prompt scrub and the answer restore (issue 14 point 4): personal data out of the
prompt as numbered placeholders, and back in the answer's strings."""

from __future__ import annotations

from pydantic import BaseModel

from mailbridge.ai.bedrock import Scrubber, restore, scrub


class Reply(BaseModel):
    subject: str
    lines: list[str]
    score: float


def test_addresses_ibans_cards_and_phones_become_numbered_placeholders() -> None:
    # Given text with two addresses (one twice), an IBAN, a Luhn-valid card and a phone number
    text = (
        "Write to kim@home.example or sam@work.example (kim@home.example again); "
        "IBAN DE89370400440532013000, card 4111-1111-1111-1111, call +1 (415) 555-0100."
    )
    # When it is scrubbed
    scrubbed, placeholders = scrub(text)
    # Then each value is a placeholder of its kind, the same value the same placeholder
    assert scrubbed == (
        "Write to [EMAIL_1] or [EMAIL_2] ([EMAIL_1] again); IBAN [IBAN_1], card [CARD_1], call [PHONE_1]."
    )
    # And the map gives back each original
    assert placeholders == {
        "[EMAIL_1]": "kim@home.example",
        "[EMAIL_2]": "sam@work.example",
        "[IBAN_1]": "DE89370400440532013000",
        "[CARD_1]": "4111-1111-1111-1111",
        "[PHONE_1]": "+1 (415) 555-0100",
    }


def test_a_sixteen_digit_number_failing_the_luhn_check_is_not_a_card() -> None:
    # Given a 16-digit number whose check digit is wrong
    scrubbed, placeholders = scrub("ref 4111 1111 1111 1112")
    # Then it is scrubbed, as a plain number
    assert scrubbed == "ref [PHONE_1]"
    assert placeholders == {"[PHONE_1]": "4111 1111 1111 1112"}


def test_one_scrubber_numbers_across_the_texts_of_one_prompt() -> None:
    # Given one scrubber used on two parts of a prompt
    scrubber = Scrubber()
    # When both name addresses
    first, second = scrubber("a@x.example"), scrubber("b@y.example and a@x.example")
    # Then the numbering runs on, and repeats reuse the placeholder
    assert (first, second) == ("[EMAIL_1]", "[EMAIL_2] and [EMAIL_1]")
    assert scrubber.placeholders == {"[EMAIL_1]": "a@x.example", "[EMAIL_2]": "b@y.example"}


def test_restore_puts_back_only_the_scrubs_placeholders_in_every_string_field() -> None:
    # Given an answer naming a placeholder the scrub made, one it did not, and a number field
    answer = Reply(subject="To [EMAIL_1]", lines=["Call [PHONE_1].", "Not [EMAIL_9] nor [email]."], score=0.5)
    placeholders = {"[EMAIL_1]": "kim@home.example", "[PHONE_1]": "+1 415 555 0100"}
    # When it is restored
    restored = restore(answer, placeholders)
    # Then the known placeholders are the originals, in nested lists too; the rest is unchanged
    assert restored == Reply(
        subject="To kim@home.example",
        lines=["Call +1 415 555 0100.", "Not [EMAIL_9] nor [email]."],
        score=0.5,
    )
    # And the answer given is left as it was (the cache keeps it with its placeholders)
    assert answer.subject == "To [EMAIL_1]"
