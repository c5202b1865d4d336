"""Cost: the price table, the cost of a usage, estimates before launch, and the budget.

    pricing         prices per model, cost of a usage at batch prices, money in JSON
    prompt_shape    a prompt measured offline: tokens and cacheable prefixes
    bounds          floor, ceiling and worst case of requests, prompt caching included
    estimate        token counts and a cost range for a file, before anything is sent
    estimate_parts  what an estimate groups (shared prefixes) and calibrates (samples)
    budget          --max-cost: what a run may spend
"""
