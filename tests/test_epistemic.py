from transformers import AutoTokenizer

from selfdistill.epistemic import density_per_1k, epistemic_token_ids, substring_count, word_count


def test_substring_count_is_the_papers_loose_count():
    text = "Wait, I checked it. Unlikely! Let me await... hmm, maybe."
    # wait, check (in checked), likely (in Unlikely), wait (in await), hmm, maybe
    assert substring_count(text) == 6
    assert word_count(text) == 3  # Wait, hmm, maybe


def test_counts_are_case_insensitive():
    assert substring_count("WAIT wait Wait") == 3
    assert word_count("WAIT wait Wait") == 3


def test_density():
    assert density_per_1k(3, 1500) == 2.0
    assert density_per_1k(3, 0) == 0.0


def test_epistemic_ids_from_a_real_tokenizer(toy_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    ids = epistemic_token_ids(tok)
    texts = {tok.decode([i]).strip().lower() for i in ids}
    assert {"wait", "hmm", "check"} <= texts
    assert all(
        t.startswith(
            ("wait", "hmm", "perhaps", "maybe", "actually", "alternatively", "seems", "might", "likely", "check")
        )
        for t in texts
    )
    assert tok.convert_tokens_to_ids("Ġthe") not in ids
