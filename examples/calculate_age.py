def calculate_age(birth_year):
    """Calculates a person's age based on their birth year."""
    current_year = 2024
    <CURSOR>
    return age
