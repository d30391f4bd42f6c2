"""What every entry point shares: a user error is one line, wherever it was raised."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from srdistill.cli.common import exit_on_user_error, user_message


class BrokenDataset(Dataset):
    """Reading item 1 fails the way a damaged training file does."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 1:
            raise ValueError("teacher cache entry /data/cache/0001.pt is truncated\ndelete it")
        return torch.zeros(1)


@exit_on_user_error
def read_all(workers: int) -> None:
    for _ in DataLoader(BrokenDataset(), batch_size=1, num_workers=workers):
        pass


@pytest.mark.parametrize("workers", [0, 1])
def test_an_error_in_a_data_loader_worker_is_its_own_message_on_one_line(workers, capsys):
    with pytest.raises(SystemExit) as exit_info:
        read_all(workers)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: teacher cache entry /data/cache/0001.pt is truncated; delete it\n"


def test_the_last_exception_of_a_chained_worker_traceback_is_kept():
    text = (
        "Caught OSError in DataLoader worker process 3.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    raise KeyError('a: b')\n"
        "KeyError: 'a: b'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "y.py", line 2, in g\n'
        "srdistill.models.checkpoint.CheckpointError: cannot read /d/x.pt: it is empty\n"
    )
    assert user_message(OSError(text)) == "cannot read /d/x.pt: it is empty"


def test_an_ordinary_message_is_only_joined_onto_one_line():
    assert user_message(ValueError("first line.\n  second")) == "first line; second"
