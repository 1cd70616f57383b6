"""The log renderer (dashboard.ansi): SGR colours and styles, visible control and bidi
characters, search marks, and escaping that stays XSS-proof whatever the escape codes say."""

import re

import pytest

from dashboard.ansi import plain, render

E = "\x1b"


def test_plain_text_is_escaped():
    assert render("a < b & 'c' \"d\"") == "a &lt; b &amp; &#x27;c&#x27; &quot;d&quot;"


def test_16_colours_bold_italic_underline_and_reset():
    html = render(f"{E}[1;31mred{E}[0m plain {E}[3;4;92;44mx{E}[m")
    assert html == (
        '<span class="a-f1 a-bo">red</span> plain <span class="a-f10 a-b4 a-it a-un">x</span>'
    )


def test_attributes_turn_off_one_by_one():
    html = render(f"{E}[1;3;4;33ma{E}[22mb{E}[23;24mc{E}[39md")
    assert html == (
        '<span class="a-f3 a-bo a-it a-un">a</span><span class="a-f3 a-it a-un">b</span>'
        '<span class="a-f3">c</span>d'
    )


def test_256_colours():
    assert render(f"{E}[38;5;9mx") == '<span class="a-f9">x</span>'
    assert render(f"{E}[38;5;208mx") == '<span style="color:rgb(255,135,0)">x</span>'
    assert render(f"{E}[48;5;240mx") == '<span style="background-color:rgb(88,88,88)">x</span>'
    assert render(f"{E}[38:5:196mx") == '<span style="color:rgb(255,0,0)">x</span>'


def test_truecolor_foreground_and_background():
    html = render(f"{E}[38;2;10;20;30;48;2;255;255;0mx")
    assert html == '<span style="color:rgb(10,20,30);background-color:rgb(255,255,0)">x</span>'
    assert render(f"{E}[38:2::1:2:3mx") == '<span style="color:rgb(1,2,3)">x</span>'


@pytest.mark.parametrize(
    "codes",
    ["38;2;999;0;0", "38;5;256", "38;2;1;2", "38;5", "9999999999", "38:2::1:2:3000"],
)
def test_out_of_range_colours_are_ignored(codes):
    assert render(f"{E}[{codes}mx") == "x"


def test_each_line_starts_with_the_default_style():
    render(f"{E}[31mred, never reset")
    assert render("next") == "next"


def test_script_inside_colour_codes_is_text():
    html = render(
        f"{E}[31m<script>alert(1)</script>{E}[0m{E}[38;2;1;2;3m<img src=x onerror=alert(2)>"
    )
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    # Only our own tags remain, with attributes from fixed names and numbers.
    tags = re.findall(r"<[^>]*>", html)
    for tag in tags:
        assert re.fullmatch(
            r'</span>|<span( class="[a-z0-9 -]+")?( style="[a-z:();,0-9-]+")?>', tag
        )


@pytest.mark.parametrize(
    "evil", ['38;2;1;2;3" onmouseover="x', "31m<b>", '"><script>', "38;5;1'><svg>", "38;5;x"]
)
def test_anything_else_in_an_escape_is_shown_as_text(evil):
    html = render(f"{E}[{evil}m<i>")
    assert html.startswith('<span class="ctl">\\x1b</span>[') or html.startswith('<span class="a-')
    tags = re.findall(r"<[^>]*>", html)
    assert set(tags) <= {'<span class="ctl">', "</span>", '<span class="a-f1">'}, tags


def test_control_characters_are_visible_escapes():
    assert render("bell\x07 back\x08 nul\x00 del\x7f c1\x85") == (
        'bell<span class="ctl">\\x07</span> back<span class="ctl">\\x08</span> '
        'nul<span class="ctl">\\x00</span> del<span class="ctl">\\x7f</span> '
        'c1<span class="ctl">\\x85</span>'
    )
    assert render("a\tb") == "a\tb"  # tabs are text
    assert render("progress\r") == 'progress<span class="ctl">\\x0d</span>'


def test_other_escape_sequences_are_shown():
    assert render(f"{E}[2Kcleared") == '<span class="ctl">\\x1b</span>[2Kcleared'
    assert render(f"{E}]0;<title>{E}\\") == (
        '<span class="ctl">\\x1b</span>]0;&lt;title&gt;<span class="ctl">\\x1b</span>\\'
    )


@pytest.mark.parametrize(
    "char",
    ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_bidi_controls_are_visible(char):
    html = render(f"admin{char}txt.exe")
    assert char not in html
    assert f'<span class="ctl">&lt;U+{ord(char):04X}&gt;</span>' in html


def test_search_marks_the_visible_text_across_colours():
    html = render(f"{E}[32mmigr{E}[1mating{E}[0m users", "migrating")
    assert html == (
        '<span class="a-f2"><mark>migr</mark></span>'
        '<span class="a-f2 a-bo"><mark>ating</mark></span> users'
    )
    assert render("a<b>&amp;", "amp") == "a&lt;b&gt;&amp;<mark>amp</mark>;"
    assert render(f"x{E}[31m<y>", "<y") == 'x<span class="a-f1"><mark>&lt;y</mark>&gt;</span>'


def test_search_marks_as_the_logs_api_matches():
    """The search's syntax is ``GET /v1/logs`` ``text``'s: as written, ``*``, ``/regex/``."""
    assert render("Done DONE", "DONE") == "Done <mark>DONE</mark>"
    assert render("moved 3 rows", "mov*3") == "<mark>moved 3</mark> rows"
    assert (
        render("moved 3 rows <b>", "/\\d+ r|<b/")
        == "moved <mark>3 r</mark>ows <mark>&lt;b</mark>&gt;"
    )
    assert render("aaa", "/x*/") == "aaa"  # empty matches mark nothing


def test_search_never_matches_inside_an_escape_it_made():
    assert render("a\x07b", "x07") == 'a<span class="ctl">\\x07</span>b'


def test_plain_drops_sgr_only():
    assert plain(f"{E}[1;31mred{E}[0m {E}[2K") == f"red {E}[2K"


def test_long_parameter_lists_work_and_repeat_the_same():
    codes = ";".join(["1"] * 50 + ["31"])
    assert render(f"{E}[{codes}mx") == '<span class="a-f1 a-bo">x</span>'
    assert render(f"{E}[{codes}mx") == '<span class="a-f1 a-bo">x</span>'
    assert render(f"{E}[31mx") == render(f"{E}[31mx") == '<span class="a-f1">x</span>'
