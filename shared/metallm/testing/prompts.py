"""Real sentences of three kinds, for the demo and the tests (kept small and in-package)."""

from __future__ import annotations

import random

__all__ = ["ASTRONOMY", "COOKING", "arithmetic_questions"]

COOKING = [
    "How long should I roast a whole chicken at 200 degrees Celsius?",
    "What is the best way to caramelize onions without burning them?",
    "Can I substitute baking soda for baking powder in pancakes?",
    "How do I make a smooth bechamel sauce for lasagna?",
    "Why does my bread dough not rise in a cold kitchen?",
    "What spices go into a classic garam masala blend?",
    "How do I keep homemade pasta from sticking together?",
    "What is the difference between braising and stewing beef?",
    "How much salt should I add to the water when boiling potatoes?",
    "Can you freeze fresh basil pesto for later?",
    "How do I temper chocolate for dipping strawberries?",
    "What temperature should a medium-rare steak reach inside?",
    "How can I make crispy roast potatoes with olive oil?",
    "Why did my custard curdle on the stove?",
    "What is a good vegetarian filling for dumplings?",
    "How do I poach an egg so the white stays together?",
    "Which flour makes the chewiest pizza crust?",
    "How long does risotto need to simmer before it is creamy?",
    "What herbs pair well with grilled lamb chops?",
    "How do I thicken a soup that is too watery?",
    "Should I rinse rice before cooking it in a pot?",
    "How do I make a quick pickle with cucumbers and vinegar?",
    "What makes a cheesecake crack in the oven?",
    "How do I sear scallops so they get a golden crust?",
]

ASTRONOMY = [
    "Why does Mars appear red in the night sky?",
    "How far away is the Andromeda galaxy from the Milky Way?",
    "What causes a total solar eclipse?",
    "How do astronomers detect planets orbiting other stars?",
    "What is the event horizon of a black hole?",
    "Why does Saturn have such prominent rings?",
    "How old is the universe according to the cosmic microwave background?",
    "What is a neutron star made of?",
    "How does the Moon cause ocean tides on Earth?",
    "What is the difference between a comet and an asteroid?",
    "Why is Venus the hottest planet in the solar system?",
    "How do stars produce energy through nuclear fusion?",
    "What is dark matter and how do we know it exists?",
    "How long does light from the Sun take to reach Earth?",
    "What happens when a massive star goes supernova?",
    "Why does Jupiter have a Great Red Spot?",
    "How are the seasons caused by the tilt of Earth's axis?",
    "What are the phases of the Moon during a lunar month?",
    "How do radio telescopes observe distant quasars?",
    "What is the Kuiper belt beyond Neptune?",
    "How was the expansion of the universe discovered?",
    "What is a light-year as a unit of distance?",
    "Why do we see only one side of the Moon?",
    "What are gravitational waves and how are they measured?",
]


def arithmetic_questions(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` multiplication questions with their answers, e.g. ("What is 37 times 12?", "444")."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(11, 99), rng.randint(11, 99)
        out.append((f"What is {a} times {b}?", str(a * b)))
    return out
