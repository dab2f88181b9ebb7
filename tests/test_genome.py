"""The graph genome: random draws, validity, mutation, expressions and the CE fixture."""

import numpy as np
import pytest

from augloss import losses as L
from augloss.losses import Genome, InvalidGenome, MutationFailed, parse
from augloss.losses.genome import HIDDEN, N_IDS, NODES, ROOT

# CE in this space (reference fixture): h0 = ln(p), h1 = y * h0, root = neg(h1).
# Unused nodes h2, h3 are unary placeholders.
CE = Genome(unary=(1, 0, 3, 4, 0), binary=(0, 2, 0, 0, 0), is_binary=(False, True, False, False,
            False), first=(1, 0, 0, 1, 5), second=(-1, 4, -1, -1, -1))


def test_ce_fixture():
    assert str(CE.to_expr()) == "-(y * ln(p))"
    assert CE.to_expr().key == parse("-(ln(p) * y)").key
    g, r = CE.validate()
    assert r.ok and not g.flip and g == CE
    assert CE.active() == frozenset({0, 1, 4, 5, 8})
    assert CE.operands(4) == (1,) and CE.operands(5) == (0, 4) and CE.operands(8) == (5,)


def test_negated_ce_gets_flipped_and_is_stored_as_its_negation():
    times_minus_one = Genome((1, 0, 3, 4, 0), (0, 2, 0, 0, 2), (False, True, False, False, True),
                             (1, 0, 0, 1, 5), (-1, 4, -1, -1, 3))  # root = h1 * -1 = CE
    assert str(times_minus_one.raw_expr()) == "y * ln(p) * -1"
    assert not times_minus_one.validate()[0].flip
    pos = Genome((1, 0, 3, 4, 0), (0, 2, 0, 0, 2), (False, True, False, False, True),
                 (1, 0, 0, 1, 5), (-1, 4, -1, -1, 2))  # root = h1 * +1 = y ln p (negative CE)
    g, r = pos.validate()
    assert r.ok and g.flip
    assert str(g.to_expr()) == "-(y * ln(p) * 1)"


def test_inherited_flip_quirk():
    flipped_parent_child = Genome(CE.unary, CE.binary, CE.is_binary, CE.first, CE.second,
                                  flip=True)
    fixed, r = flipped_parent_child.validate()
    assert r.ok and not fixed.flip  # corrected: the raw term decides
    faithful, r = flipped_parent_child.validate(faithful_quirks=True)
    assert r.ok and faithful.flip  # the earlier code: sees -CE, so trains -CE
    assert "inherited-flip" in r.quirk
    assert str(faithful.to_expr()) == "-(-(y * ln(p)))"


def test_structural_rules():
    cyclic = Genome(CE.unary, CE.binary, CE.is_binary, (1, 5, 0, 1, 5), (-1, 4, -1, -1, -1))
    assert not cyclic.is_acyclic()
    assert cyclic.validate()[1].reason == "cycle in the active graph"
    self_loop = Genome(CE.unary, CE.binary, CE.is_binary, (4, 0, 0, 1, 4), CE.second)
    assert not self_loop.is_acyclic()
    no_y = Genome(CE.unary, CE.binary, CE.is_binary, (1, 0, 0, 1, 4), CE.second)
    assert no_y.validate()[1].reason == "y not used"
    with pytest.raises(InvalidGenome):
        Genome(CE.unary, CE.binary, CE.is_binary, CE.first, (-1, 4, -1, -1, 2))  # unary w/ 2nd
    with pytest.raises(InvalidGenome):
        Genome((27, 0, 0, 0, 0), CE.binary, CE.is_binary, CE.first, CE.second)
    with pytest.raises(InvalidGenome):
        Genome(CE.unary, CE.binary, CE.is_binary, (1, 0, 0, 1, 9), CE.second)
    with pytest.raises(InvalidGenome):
        Genome(CE.unary, CE.binary, CE.is_binary, (1, 4, 0, 1, 5), (-1, 4, -1, -1, -1))


def test_thousand_seeded_random_genomes_are_valid_and_reproducible():
    a = [Genome.random(np.random.default_rng(1234 + i)) for i in range(1000)]
    b = [Genome.random(np.random.default_rng(1234 + i)) for i in range(1000)]
    assert a == b
    for g in a:
        assert g.is_acyclic() and g.structure_error() == ""
        e = g.to_expr()
        assert {"y", "p"} <= e.leaves()
        assert parse(str(e)).key == e.key
        r = L.integrity(g.raw_expr())
        assert r.ok and r.flip == g.flip
        assert not L.integrity(e).flip  # stored as trained: the flipped form needs no flip
    assert len({g.to_expr().key for g in a}) > 800  # diverse
    assert 0 < sum(g.flip for g in a) < 1000


def test_initial_wiring_rules():
    rng = np.random.default_rng(0)
    draws = [Genome.random_unchecked(rng) for _ in range(4000)]
    root_ops = [g.operands(ROOT) for g in draws]
    assert all(set(ops) <= set(HIDDEN) for ops in root_ops)
    root_binary = np.mean([g.is_binary[-1] for g in draws])
    hidden_binary = np.mean([b for g in draws for b in g.is_binary[:-1]])
    assert abs(root_binary - 0.8) < 0.03 and abs(hidden_binary - 0.3) < 0.03
    for g in draws:
        for node in HIDDEN:
            assert node not in g.operands(node)
            assert all(0 <= j < N_IDS and j != ROOT for j in g.operands(node))


def test_mutation_returns_a_valid_child_and_leaves_the_parent_unchanged():
    rng = np.random.default_rng(7)
    parent = Genome.random(rng)
    snapshot = parent.to_dict()
    for _ in range(200):
        child = parent.mutate(rng)
        assert child != parent or child.flip != parent.flip
        assert child.validate()[1].ok
        assert parent.to_dict() == snapshot


def test_mutate_once_changes_exactly_one_active_node():
    rng = np.random.default_rng(3)
    parent = Genome.random(rng)
    kinds = {"op": 0, "wiring": 0}
    n = 3000
    for _ in range(n):
        child = parent.mutate_once(rng)
        changed = [k for k in range(len(NODES)) if (
            parent.unary[k], parent.binary[k], parent.is_binary[k], parent.first[k],
            parent.second[k]) != (child.unary[k], child.binary[k], child.is_binary[k],
                                  child.first[k], child.second[k])]
        assert len(changed) == 1
        assert NODES[changed[0]] in parent.active()
        k = changed[0]
        if parent.is_binary[k] == child.is_binary[k] and parent.first[k] == child.first[k] \
                and parent.second[k] == child.second[k]:
            kinds["op"] += 1
        else:
            kinds["wiring"] += 1
    assert abs(kinds["op"] / n - 0.70) < 0.03  # op change probability of the reference


def test_mutation_is_seeded_and_honours_duplicates():
    parent = Genome.random(np.random.default_rng(11))
    a = parent.mutate(np.random.default_rng(5))
    b = parent.mutate(np.random.default_rng(5))
    assert a == b
    with pytest.raises(MutationFailed):
        parent.mutate(np.random.default_rng(5), max_attempts=20,
                      is_duplicate=lambda child, result: True)
    child, result, attempts = parent.mutate_with_result(np.random.default_rng(5))
    assert result.ok and attempts >= 1 and child == a


def test_dict_round_trip_and_malformed_records():
    g = Genome.random(np.random.default_rng(2))
    assert Genome.from_dict(g.to_dict()) == g
    with pytest.raises(InvalidGenome, match="malformed genome record"):
        Genome.from_dict({"unary": [1, 2]})
