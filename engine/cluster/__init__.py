"""Scale-out on Ray: shots and jobs run on Ray actors, each a warm engine (imports, feature net, CLIP or diffusion
model loaded once per actor), one per GPU or per CPU slot.

- `sources`: the images a job names, sent to the actors as bytes (a cluster's nodes share no folder);
- `actor`: the engine in a Ray worker process (run a shot or a job; progress and cancel from another call);
- `pool`: the actors, fed from a queue; a dead actor is restarted by Ray and its task retried (bounded), a task
  that fails for its own reason is not;
- `storyboard`: `python -m engine storyboard FILE --ray [ADDRESS]` as a runner of engine/storyboard/render.py.

Ray is an optional dependency (`pip install regia-engine[cluster]`); nothing here imports it until it is used.
"""
