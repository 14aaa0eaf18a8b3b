"""Running a test's worker on several threads at once."""

import threading


def run_concurrently(worker, count: int, timeout: float = 120) -> None:
    """Run worker(i) for i in range(count), each on its own thread, all started before any is
    joined. Fails when a thread is still running `timeout` seconds into its join, and re-raises
    the first exception a worker raised once all have ended."""
    errors = []

    def guarded(i):
        try:
            worker(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if errors:
        raise errors[0]
