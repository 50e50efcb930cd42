# The package's one named error. Everything that refuses input (a bad
# program, a bad override, a bad HAL request) raises FFError with a reason
# string a person can act on; callers catch it and keep the device running.


class FFError(Exception):
    pass
