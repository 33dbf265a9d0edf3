"""The compute thread: one thread runs every torch call of the model, whichever thread asks.

torch's OpenMP threads belong to the thread that starts a parallel region. A second thread that runs torch
makes a second team, libgomp then manages more threads than a small CPU's cores and throttles its spin-waits,
and every parallel region sleeps and wakes through the kernel: decoding ran at half speed on 2 cores (32 vs
67 steps/s). A team lives as long as its thread, so one torch call on a long-lived worker thread slows the
model for good. So callers hand their torch work to a ComputeThread (`call`) and wait.

`continuo serve` gives it the main thread (`serve`, the thread that loaded the model). Without a serving
thread (tests, benchmarks, in-process use), the calling thread runs the work itself, one caller at a time
(`wait_for`): the first caller drives, and a waiting caller takes over when it is done. Subclasses add work
of their own between tasks (`inference/musicgen/batching.py:BatchScheduler`: the decode steps of every request).

Every in-process engine owns one and names it as `compute` (inference/api.py:Engine): our MusicGen engine's is
its batch scheduler; an engine that renders one request at a time (the reference, ACE-Step) owns a plain one and
runs its public methods on it (`runs_on_compute`). So a caller never needs to know which kind it holds: it
calls the engine from any thread, and hands its own torch work (stems) to the engine's `compute`.
Measured before the rule held for the batch bench (a job thread ran the first text encoding): the batched decode
steps took 60 % longer than the same steps inline (6.1 s against 3.8 s for 102 steps). The codec and the
conditioning of a joining job therefore pause the others' steps (tens of ms for text, about a second for a 16 s
codec decode).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from inference.errors import Cancelled


@dataclass(eq=False)
class Task:
    """A call to run on the compute thread."""

    function: Callable[[], object]
    done: threading.Event = field(default_factory=threading.Event)
    value: object = None
    error: BaseException | None = None


class ComputeThread:
    """Runs the callables handed to it on one thread at a time: the serving thread, or else a calling one."""

    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.cond = threading.Condition()
        self.driving = threading.RLock()  # held by the thread running the work: the serving one or a caller
        self.thread: int | None = None  # that thread
        self.serving = False

    def call(self, function: Callable[[], object]) -> object:
        """function() on the compute thread (between steps); its value, or its exception raised here."""
        if self.owns_thread():
            return function()
        task = Task(function)
        with self.cond:
            self.tasks.append(task)
            self.cond.notify_all()
        self.wait_for(task.done)
        if task.error is not None:
            raise task.error
        return task.value

    def wait_for(self, done: threading.Event) -> None:
        """Until done: the serving thread works, or else this thread drives while no other caller does."""
        while not done.is_set():
            if self.serving:
                done.wait(0.5)
            elif self.driving.acquire(timeout=0.05):
                try:
                    self.thread = threading.get_ident()
                    while not done.is_set() and not self.serving:
                        self.iterate()
                finally:
                    self.thread = None
                    self.driving.release()

    def serve(self, stop, on_ready: Callable[[], None] | None = None) -> None:
        """Run every task (and the subclass's work) on this thread until stop.is_set() and nothing is left.

        on_ready() runs once this thread serves: start the callers then (a caller started before would run
        its first work itself, making the second OpenMP team this thread exists to avoid)."""
        self.serving = True  # first: a caller driving in the meantime hands over after its current iteration
        with self.driving:
            self.thread = threading.get_ident()
        try:
            if on_ready is not None:
                on_ready()
            while True:
                with self.cond:
                    while not (self.tasks or self.has_work()):
                        if stop.is_set():
                            return
                        self.cond.wait(0.25)
                with self.driving:
                    self.iterate()
        finally:
            with self.driving:
                self.serving, self.thread = False, None
                self.stopped(Cancelled("the engine stopped serving; send the request again"))

    def owns_thread(self) -> bool:
        return self.thread == threading.get_ident()

    def iterate(self) -> None:
        """The waiting tasks, then the subclass's work (one unit of it)."""
        with self.cond:
            tasks, self.tasks = self.tasks, []
        for task in tasks:
            try:
                task.value = task.function()
            except BaseException as error:  # the caller raises it
                task.error = error
            task.done.set()
        self.work()

    # ---- for subclasses ---------------------------------------------------------------------------------------

    def has_work(self) -> bool:
        """Work of the subclass's own waits (called under cond)."""
        return False

    def work(self) -> None:
        """One unit of the subclass's own work (between tasks)."""

    def stopped(self, error: BaseException) -> None:
        """Serving ended: what still waits fails with error."""
        with self.cond:
            tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.error = error
            task.done.set()


def runs_on_compute(method: Callable) -> Callable:
    """An engine method that runs on the engine's own compute thread (self.compute), whichever thread calls it."""
    @functools.wraps(method)
    def on_compute(self, *args, **kwargs):
        return self.compute.call(lambda: method(self, *args, **kwargs))

    return on_compute
