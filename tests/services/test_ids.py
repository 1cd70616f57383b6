import re

from services import ids


def test_it_has_prefix_and_twenty_base32hex_chars():
    value = ids.new_id("job")
    assert re.fullmatch(r"job-[0-9a-v]{20}", value)
    assert ids.is_valid(value, "job")
    assert not ids.is_valid(value, "srv")
    assert not ids.is_valid("job-" + "w" * 20, "job")


def test_it_sorts_by_creation_in_one_process():
    made = [ids.new_id("job") for _ in range(5000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_it_sorts_by_time_across_seconds():
    earlier = ids.new_id("job", now=1_700_000_000)
    later = ids.new_id("job", now=1_700_000_001)
    assert earlier < later
    assert ids.id_time(earlier) == 1_700_000_000
    assert ids.id_time(later) == 1_700_000_001


def test_its_leading_chars_are_the_time_like_xid():
    # 2025-03-20 ids from Render begin with "c"/"d"; the time is in the leading digits.
    assert ids.new_id("job", now=1_742_400_000)[4] in "cd"
