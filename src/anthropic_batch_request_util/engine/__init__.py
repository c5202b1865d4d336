"""The engine: the steps of a batch job as plain functions over (runtime, id), and what
drives them.

    ingest     read the input into the store and name the job
    submit     create a chunk's batch exactly once (the protocol is in its docstring)
    poll       watch all of a job's batches in flight with list pages, until each ends
    fetch      download its results once and store every answer
    answers    what one results line makes of its request (pure)
    helper     a child process that reads results files beside the threads' one core
    retry      cut the requests to retry into new chunks
    finalize   write the results file and the record once every request has ended
    cancel     cancel a job's batches
    reconcile  rebuild from the store the work that should be queued
    runtime    the step kinds, the actions they ask for, the runtime they run with
    checks     what is checked before anything is created: the broker, the pricing file
    runner     drive a job from a command: ingest, hand out the work, watch the store
    tasks      the Celery app: thin tasks that run one step and queue the next
    worker     `abr worker` processes and their reconciler loop
    logs       where log records go
    memory     how the C allocator gives memory back
"""
