"""Conv/pool arithmetic: textbook values."""

from __future__ import annotations

import pytest

from cnnlab.errors import UserError
from cnnlab.inspect import conv_arith, output_size, same_padding


def test_alexnet_first_layer():
    r = conv_arith(227, 11, 4, 0, c=3, k=96)
    assert r.out == 55 and r.exact and r.note == ""
    assert r.params == 11 * 11 * 3 * 96 + 96 == 34_944
    assert r.macs == 55 * 55 * 96 * 11 * 11 * 3


def test_uneven_stride_is_explained():
    r = conv_arith(224, 11, 4, 2)  # the AlexNet paper's 224 input
    assert r.out == 55 and not r.exact and r.remainder == 1
    assert "54.25" in r.note and "floor" in r.note


def test_pooling_and_padding():
    pool = conv_arith(55, 3, 2, c=96, pool=True)
    assert pool.out == 27 and pool.params == 0 and pool.k == 96
    assert output_size(32, 3, 1, 1) == 32
    assert output_size(28, 5, 1, 2) == 28
    assert same_padding(200, 3, 2) == (100, 1)
    same = conv_arith(300, 3, 2, "same", c=3, k=100)
    assert same.out == 150 and same.pad_total == 1 and same.params == 2800
    assert conv_arith(32, 3, 1, 0, c=3, k=8, bias=False).params == 216


def test_bad_values():
    with pytest.raises(UserError):
        output_size(5, 7)
    with pytest.raises(UserError):
        conv_arith(32, 3, 0)
    with pytest.raises(UserError):
        conv_arith(32, 3, 1, "full")


def test_arith_cli(cli):
    code, out, _ = cli("arith", "--n", "227", "--f", "11", "--s", "4", "--p", "0", "--c", "3", "--k", "96")
    assert code == 0 and "= 55" in out and "34,944" in out
    code, out, _ = cli("arith", "--n", "224", "--f", "11", "--s", "4", "--p", "2")
    assert code == 0 and "not an integer" in out
    code, _, err = cli("arith", "--n", "5", "--f", "7")
    assert code == 2 and "error:" in err
