import torch

from srdistill.data.sampler import ResumableRandomSampler


def test_each_epoch_is_a_permutation_with_fresh_order_and_seeds():
    sampler = ResumableRandomSampler(10, seed=1)
    first, second = list(sampler), list(sampler)
    assert sorted(i for i, _ in first) == list(range(10))
    assert [i for i, _ in first] != [i for i, _ in second]
    assert {s for _, s in first}.isdisjoint({s for _, s in second})


def test_same_seed_same_stream_other_seed_other_stream():
    assert list(ResumableRandomSampler(10, 5)) == list(ResumableRandomSampler(10, 5))
    assert list(ResumableRandomSampler(10, 5)) != list(ResumableRandomSampler(10, 6))


def test_resumes_mid_epoch_at_the_exact_position():
    reference = ResumableRandomSampler(7, seed=2)
    stream = list(reference) + list(reference)
    interrupted = ResumableRandomSampler(7, seed=2)
    list(interrupted)  # epoch 0
    iterator = iter(interrupted)
    consumed = [next(iterator) for _ in range(3)]
    resumed = ResumableRandomSampler(7, seed=2)
    resumed.load_state_dict(interrupted.state_dict())
    assert consumed + list(resumed) == stream[7:]


def test_global_rng_does_not_change_the_stream():
    torch.manual_seed(0)
    a = list(ResumableRandomSampler(6, 3))
    torch.rand(100)
    assert list(ResumableRandomSampler(6, 3)) == a


def test_a_pass_stopped_short_of_the_end_does_not_leave_an_empty_epoch():
    """A drop_last batch sampler (as Lightning drives it, ``len`` batches and no more) never
    asks for the last few items; the next pass must still be a whole new epoch."""
    reference = list(ResumableRandomSampler(10, seed=4))
    sampler = ResumableRandomSampler(10, seed=4)
    passes = []
    for _ in range(3):
        iterator = iter(sampler)
        passes.append([next(iterator) for _ in range(8)])  # two batches of 4; 2 items dropped
    assert passes[0] == reference[:8]
    epochs = ResumableRandomSampler(10, seed=4)
    plans = [list(epochs)[:8] for _ in range(3)]
    assert passes == plans  # epoch e's pass serves epoch e's plan, every time
