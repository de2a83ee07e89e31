"""Sweep files shared by the store tests: the cluster-check grid with one failing point."""


def cluster_check_sweep(name: str, store: str, value: float = 1.0) -> str:
    """Three seeds x a passing and a failing variant, the failing one only for seed 0 (four points, one
    fails); the caller appends its ``[resources]`` table."""
    return f'''
name = "{name}"
experiment = "cluster-check"
store = "{store}"
[params]
samples = 5
[grid]
seed = [0, 1, 2]
[[zip]]
fail = [false, true]
value = [{value}, 9.0]
[[exclude]]
fail = true
seed = [1, 2]
'''
