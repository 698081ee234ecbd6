"""The one error every operator verb refuses with: a list of {field, message}, all problems at
once, so a runner can return them as data and exit non-zero."""


class Refused(ValueError):
    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in self.errors))

    @classmethod
    def one(cls, field, message):
        return cls([{"field": field, "message": message}])
