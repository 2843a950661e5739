"""The soak (`make soak`, `python -m bench.soak --minutes 20`): the whole system runs for a stated
time under the load tester and a fault schedule, then a verdict is printed and written as JSON.

Modules, one concern each:

* `system`: the real processes (embedded database, a two-node local Ray, two gateways) and how to
  find, kill and restart each of them;
* `faults`: the fault schedule scaled to the run and the injection of each fault, logged with its time;
* `apps`: opted-in apps that account for every command they send (ack, error, resent, hung);
* `probes`: REST probes of every gateway once a second, with a client timeout;
* `memory`: RSS of every long-lived process over the run;
* `verdict`: what was stored versus what was acknowledged, and the pass/fail rules;
* `run`: the run itself, its progress display, its JSON report and its plot.
"""
