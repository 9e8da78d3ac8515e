"""Driving a progress generator."""

from activepick.progress import drive


def _work(n):
    for i in range(n):
        yield {"stage": "work", "step": i + 1, "total": n}
    return n * 10


def test_drive_forwards_every_step_and_returns_the_result():
    seen = []
    assert drive(_work(3), seen.append) == 30
    assert [s["step"] for s in seen] == [1, 2, 3]


def test_drive_without_callback():
    assert drive(_work(2)) == 20
