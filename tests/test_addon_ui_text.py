"""addon/ui_text.py: messages wrapped to the sidebar's width, names in Title Case, Blender's spelling; no bpy."""

from __future__ import annotations

from regia_package import addon_module

ui_text = addon_module("ui_text")


def test_a_message_wraps_between_words_within_the_width():
    text = "Job failed: Region 'Sky', Style guide 2: the image is 11585x11585, over the size this engine decodes"
    lines = ui_text.wrap(text, 30)
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(lines) == text
    assert lines[0] == "Job failed: Region 'Sky',"


def test_a_word_longer_than_a_line_is_broken_not_lost():
    path = "/home/someone/a/very/long/path/to/weights.safetensors"
    lines = ui_text.wrap(f"missing {path} here", 20)
    assert all(len(line) <= 20 for line in lines)
    assert lines[0] == "missing" and "".join(lines[1:]) == f"{path} here"


def test_wrap_keeps_paragraphs_and_never_returns_nothing():
    assert ui_text.wrap("one\ntwo three", 40) == ["one", "two three"]
    assert ui_text.wrap("", 40) == [""] and ui_text.wrap("   ", 40) == [""]


def test_the_wrap_width_follows_the_regions_width_and_the_ui_scale():
    narrow, wide = ui_text.chars_that_fit(280, 1.0), ui_text.chars_that_fit(600, 1.0)
    assert 25 <= narrow < 48 < wide  # 48 characters clip in a 280-px sidebar
    # At UI scale 2 the region is twice as many pixels for the same text: the same characters fit.
    assert ui_text.chars_that_fit(560, 2.0) == narrow
    assert ui_text.chars_that_fit(None, 1.0) == ui_text.FALLBACK_CHARS
    assert ui_text.chars_that_fit(280, 0.0) == narrow  # background mode reports a scale of 0
    assert ui_text.chars_that_fit(40, 1.0) == ui_text.MIN_CHARS


def test_title_case_names_the_words_that_should_be_capitalised():
    assert ui_text.is_title_case("Add Region from Mask Layer")
    assert ui_text.is_title_case("Shots from Markers") and ui_text.is_title_case("CLIP Weights")
    assert ui_text.is_title_case("Canvas 64 x 48") is False  # "x" is a word
    assert ui_text.title_case_problems("Shot length") == ["length"]
    assert ui_text.title_case_problems("the Start") == ["the"]  # a minor word first is still capitalised
    assert ui_text.title_case_problems("Shot Guides (on top of the style)") == ["top", "style"]
    assert ui_text.is_title_case("Style Prompt ({prompt})") and ui_text.is_title_case("")


def test_british_spellings_are_found_in_ui_text():
    assert ui_text.british_spellings("Add Colour-Key Region") == ["Colour"]
    assert ui_text.british_spellings("More colourful; negative greys it") == ["colour", "grey"]
    assert ui_text.british_spellings("Optimiser") == ["Optimis"]
    assert ui_text.british_spellings("Color Key, Optimizer, gray") == []
