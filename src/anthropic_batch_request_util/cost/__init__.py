"""Cost: the price table, the cost of a usage, estimates before launch, and the budget.

pricing   prices per model, cost of a usage at batch prices, money formatting
estimate  token counts and a cost range for a file, before anything is sent
budget    --max-cost: what a run may spend
"""
